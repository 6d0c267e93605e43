"""Envelope encryption: master key -> per-shop data keys -> secrets.

* The platform master key (``KAMENG_MASTER_KEY``, 32 random bytes, URL-safe base64)
  never encrypts data itself; it only wraps each shop's data keys (AES-256-GCM).
* A shop's data key encrypts that shop's secrets (plugin credentials, card keys).
  Each ciphertext is bound to the shop and to a *context* (e.g. ``plugin:sandbox:api_key``)
  through the AES-GCM associated data, so it cannot be pasted into another shop or field.
* Ciphertexts name the data-key version that made them; ``kameng rotate-keys`` re-wraps
  data keys under a new master key without touching the data.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connection, transaction

from platform_core.crypto_keys import _b64, _unb64, parse_master_key

TOKEN_PREFIX = "k1"
_NONCE = 12


class DecryptionError(Exception):
    """The ciphertext is damaged, belongs to another shop or field, or its key is gone."""


def master_key_id(key: bytes) -> str:
    return hashlib.sha256(b"kameng-master:" + key).hexdigest()[:16]


def master_keys() -> dict[str, bytes]:
    """All master keys we can unwrap with, by id; the first one is current."""
    keys = [parse_master_key(settings.KAMENG_MASTER_KEY)]
    keys += [parse_master_key(k, "KAMENG_OLD_MASTER_KEYS") for k in settings.KAMENG_OLD_MASTER_KEYS]
    return {master_key_id(k): k for k in keys}


def current_master_key() -> tuple[str, bytes]:
    key = parse_master_key(settings.KAMENG_MASTER_KEY)
    return master_key_id(key), key


def _wrap_aad(shop_id: int, version: int) -> bytes:
    return f"kameng-data-key:{shop_id}:{version}".encode()


def wrap_data_key(shop_id: int, version: int, data_key: bytes) -> tuple[bytes, str]:
    key_id, master = current_master_key()
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(master).encrypt(nonce, data_key, _wrap_aad(shop_id, version)), key_id


def unwrap_data_key(shop_id: int, version: int, wrapped: bytes, key_id: str) -> bytes:
    master = master_keys().get(key_id)
    if master is None:
        raise DecryptionError(
            f"data key {version} of shop {shop_id} is wrapped by master key {key_id}, which is not configured "
            "(add it to KAMENG_OLD_MASTER_KEYS)"
        )
    wrapped = bytes(wrapped)
    try:
        return AESGCM(master).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _wrap_aad(shop_id, version))
    except InvalidTag as exc:
        raise DecryptionError(f"data key {version} of shop {shop_id} does not unwrap with master key {key_id}") from exc


_cache: dict[tuple[int, int], bytes] = {}
_cache_lock = threading.Lock()


def create_data_key(shop) -> int:
    """Give ``shop`` a new data key (version n+1) and return its version."""
    from tenants.models import ShopDataKey

    with transaction.atomic():
        latest = ShopDataKey.objects.select_for_update().filter(shop=shop).order_by("-version").first()
        version = (latest.version + 1) if latest else 1
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped, key_id = wrap_data_key(shop.pk, version, data_key)
        ShopDataKey.objects.create(shop=shop, version=version, wrapped_key=wrapped, master_key_id=key_id)
    _latest.pop(shop.pk, None)
    return version


_latest: dict[int, tuple[int, float]] = {}
LATEST_VERSION_SECONDS = 60  # a new data key version is picked up by every process within this


def _data_key(shop_id: int, version: int | None) -> tuple[int, bytes]:
    from tenants.models import ShopDataKey

    if version is None:
        known = _latest.get(shop_id)
        if known is not None and known[1] > time.monotonic():
            version = known[0]
    if version is not None:
        cached = _cache.get((shop_id, version))
        if cached is not None:
            return version, cached
    rows = ShopDataKey.objects.filter(shop_id=shop_id)
    row = rows.filter(version=version).first() if version is not None else rows.order_by("-version").first()
    if row is None:
        raise DecryptionError(f"shop {shop_id} has no data key{'' if version is None else f' version {version}'}")
    key = unwrap_data_key(shop_id, row.version, row.wrapped_key, row.master_key_id)
    with _cache_lock:
        _cache[(shop_id, row.version)] = key
        if version is None and not connection.in_atomic_block:
            # inside a transaction the newest key may still roll back: do not remember it
            _latest[shop_id] = (row.version, time.monotonic() + LATEST_VERSION_SECONDS)
    return row.version, key


def encrypt(shop, plaintext: str | bytes, *, context: str) -> str:
    """Encrypt with the shop's newest data key; returns a printable token."""
    if isinstance(plaintext, str):
        plaintext = plaintext.encode()
    version, key = _data_key(shop.pk, None)
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, plaintext, f"{shop.pk}:{context}".encode())
    return f"{TOKEN_PREFIX}.{version}.{_b64(nonce + sealed)}"


def decrypt(shop, token: str, *, context: str) -> bytes:
    try:
        prefix, version, body = token.split(".", 2)
        if prefix != TOKEN_PREFIX:
            raise ValueError(prefix)
        raw = _unb64(body)
        version = int(version)
    except (ValueError, AttributeError) as exc:
        raise DecryptionError("not a Kameng ciphertext") from exc
    _, key = _data_key(shop.pk, version)
    try:
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], f"{shop.pk}:{context}".encode())
    except InvalidTag as exc:
        raise DecryptionError("ciphertext does not belong to this shop and field, or was altered") from exc


def decrypt_str(shop, token: str, *, context: str) -> str:
    return decrypt(shop, token, context=context).decode()


#: (shop, context, token) -> plaintext of configuration secrets (gateway API keys, webhook
#: secrets), read on every payment request; a token is immutable, so the same token always
#: decrypts to the same text. Never used for card keys: those stay encrypted until shown.
_remembered_secrets: dict[tuple[int, str, str], str] = {}
_SECRETS_REMEMBERED = 4096


def decrypt_setting(shop, token: str, *, context: str) -> str:
    """:func:`decrypt_str` for configuration secrets, remembered per process."""
    memo_key = (shop.pk, context, token)
    found = _remembered_secrets.get(memo_key)
    if found is None:
        found = decrypt_str(shop, token, context=context)  # a wrong token raises and is not remembered
        with _cache_lock:
            if len(_remembered_secrets) >= _SECRETS_REMEMBERED:
                _remembered_secrets.clear()
            _remembered_secrets[memo_key] = found
    return found


def rotate_master_key() -> int:
    """Re-wrap every data key that is not under the current master key; returns how many."""
    from tenants.models import ShopDataKey

    current_id, _ = current_master_key()
    count = 0
    for row in ShopDataKey.objects.exclude(master_key_id=current_id).iterator():
        with transaction.atomic():
            locked = ShopDataKey.objects.select_for_update().get(pk=row.pk)
            key = unwrap_data_key(locked.shop_id, locked.version, locked.wrapped_key, locked.master_key_id)
            locked.wrapped_key, locked.master_key_id = wrap_data_key(locked.shop_id, locked.version, key)
            locked.save(update_fields=["wrapped_key", "master_key_id"])
            count += 1
    return count


def forget_cached_keys() -> None:
    with _cache_lock:
        _cache.clear()
        _latest.clear()
        _remembered_secrets.clear()


def derived_key(shop, purpose: str) -> bytes:
    """A stable per-shop key for ``purpose`` (e.g. fingerprints), derived from the
    shop's first data key, so it survives master-key rotation."""
    import hmac

    cached = _cache.get((shop.pk, -hash(purpose)))
    if cached is not None:
        return cached
    _, base = _data_key(shop.pk, 1)
    key = hmac.new(base, f"kameng-derived:{purpose}".encode(), hashlib.sha256).digest()
    with _cache_lock:
        _cache[(shop.pk, -hash(purpose))] = key
    return key
