"""HTML conformance reports: lands with the report issue."""
