"""Built-in distribution plugins."""
