"""Query passwords (查询密码): what lets a guest look an order up without an account.

They are short (4+ characters) and guard one order each, next to its number and
contact, behind a rate limit. A password hasher such as Argon2 (100 MiB, ~0.3 s a hash)
would make every guest checkout cost more CPU than the rest of the order together, and
buys little for a 4-character secret. Instead: HMAC-SHA256 with a per-order salt under a
per-shop key derived from the shop's data key (``crypto.derived_key``), so a copy of the
database alone is not enough to test guesses offline (decision 0009)."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from django.contrib.auth.hashers import check_password
from django.db import connection

PREFIX = "qp1$"
_PURPOSE = "order-query-password"


def _key() -> bytes:
    from platform_core.crypto import derived_key

    return derived_key(connection.tenant, _PURPOSE)


def _digest(salt_hex: str, raw: str) -> str:
    return hmac.new(_key(), bytes.fromhex(salt_hex) + raw.encode(), hashlib.sha256).hexdigest()


def hash_query_password(raw: str) -> str:
    salt_hex = secrets.token_hex(16)
    return f"{PREFIX}{salt_hex}${_digest(salt_hex, raw)}"


def check_query_password(raw: str, stored: str) -> bool:
    if stored.startswith(PREFIX):
        salt_hex, _, digest = stored[len(PREFIX):].partition("$")
        try:
            expected = _digest(salt_hex, raw or "")
        except ValueError:  # not hex: a damaged value never matches
            return False
        return hmac.compare_digest(expected, digest)
    return check_password(raw or "", stored)  # orders placed before query passwords were keyed


def spend_equal_time(raw: str) -> None:
    """As much work as a check, for lookups of orders that do not exist."""
    _digest("00" * 16, raw or "")

