"""Library code exported from the course modules (one file per module)."""
