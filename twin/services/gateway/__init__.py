"""The reference gateway."""
