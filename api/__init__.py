"""REST API: platform endpoints on the platform host, shop endpoints on every shop host."""
