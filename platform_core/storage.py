"""S3-compatible media storage with one prefix per shop, computed on every call.

django-tenants has no S3 storage; computing the location once at import time leaks
one shop's prefix to all (django-tenants #242). Here the prefix is read from the
connection's current schema each time a path is built."""
from __future__ import annotations

from django.db import connection
from storages.backends.s3 import S3Storage


class ShopS3Storage(S3Storage):
    def _shop_prefix(self) -> str:
        schema = getattr(connection, "schema_name", "public") or "public"
        return "platform" if schema == "public" else f"shops/{schema}"

    @property
    def location(self):  # type: ignore[override]
        return self._shop_prefix()

    @location.setter
    def location(self, value):
        # django-storages sets location from settings in __init__; the shop decides instead
        pass
