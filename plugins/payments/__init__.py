"""Built-in payments plugins."""
