"""The reference cms."""
