"""experiment room."""
