"""Storefront themes: one folder per theme with templates/, static/ and theme.json."""
