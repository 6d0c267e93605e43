"""Built-in marketing plugins."""
