"""ensemble room."""
