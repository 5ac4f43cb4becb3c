"""transform room."""
