"""Master-key parsing, free of Django imports so settings can validate keys at startup."""
from __future__ import annotations

from base64 import urlsafe_b64decode, urlsafe_b64encode

from django.core.exceptions import ImproperlyConfigured


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_master_key(value: str, name: str = "KAMENG_MASTER_KEY") -> bytes:
    try:
        key = _unb64(value.strip())
    except (ValueError, TypeError):
        key = b""
    if len(key) != 32:
        raise ImproperlyConfigured(
            f"{name} must be 32 random bytes in URL-safe base64 "
            "(make one with: python -c \"import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())\")"
        )
    return key


