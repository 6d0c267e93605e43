"""Built-in suppliers plugins."""
