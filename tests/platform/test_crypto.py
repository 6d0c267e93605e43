"""Envelope encryption: per-shop data keys wrapped by the master key; rotation."""
from __future__ import annotations

import base64
import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from platform_core import crypto
from tenants.models import ShopDataKey


def _new_master() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_round_trip_and_binding_to_shop_and_context(alpha, bravo):
    token = crypto.encrypt(alpha, "卡密 CARD-1234", context="inventory:key")
    assert "CARD" not in token
    assert crypto.decrypt_str(alpha, token, context="inventory:key") == "卡密 CARD-1234"
    for shop, context in ((bravo, "inventory:key"), (alpha, "other")):
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt(shop, token, context=context)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(alpha, tampered, context="inventory:key")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(alpha, "plaintext", context="inventory:key")


def test_data_keys_are_stored_wrapped(alpha):
    row = ShopDataKey.objects.get(shop=alpha, version=1)
    assert len(bytes(row.wrapped_key)) == 12 + 32 + 16  # nonce + key + tag, never the bare key
    assert row.master_key_id == crypto.current_master_key()[0]


def test_wrong_master_key_cannot_decrypt(alpha, settings):
    token = crypto.encrypt(alpha, "secret", context="c")
    crypto.forget_cached_keys()
    settings.KAMENG_MASTER_KEY = _new_master()
    with pytest.raises(crypto.DecryptionError, match="not configured"):
        crypto.decrypt(alpha, token, context="c")
    crypto.forget_cached_keys()


def test_rotate_keys_rewraps_under_the_new_master(alpha, settings, capsys):
    token = crypto.encrypt(alpha, "secret", context="c")
    old = settings.KAMENG_MASTER_KEY
    settings.KAMENG_MASTER_KEY, settings.KAMENG_OLD_MASTER_KEYS = _new_master(), [old]
    crypto.forget_cached_keys()
    assert crypto.decrypt_str(alpha, token, context="c") == "secret"  # old key still unwraps
    call_command("rotate_keys")
    assert "Re-wrapped" in capsys.readouterr().out
    settings.KAMENG_OLD_MASTER_KEYS = []  # retire the old key
    crypto.forget_cached_keys()
    assert crypto.decrypt_str(alpha, token, context="c") == "secret"
    assert not ShopDataKey.objects.exclude(master_key_id=crypto.current_master_key()[0]).exists()
    crypto.forget_cached_keys()


def test_a_new_data_key_version_keeps_old_ciphertexts_readable(alpha):
    old = crypto.encrypt(alpha, "v1", context="c")
    assert crypto.create_data_key(alpha) == 2
    new = crypto.encrypt(alpha, "v2", context="c")
    assert new.startswith("k1.2.") and old.startswith("k1.1.")
    assert crypto.decrypt_str(alpha, old, context="c") == "v1"
    assert crypto.decrypt_str(alpha, new, context="c") == "v2"


@pytest.mark.parametrize("value", ["", "short", "not base64 at all!!", base64.urlsafe_b64encode(b"x" * 16).decode()])
def test_malformed_master_key_is_a_clear_configuration_error(value):
    with pytest.raises(ImproperlyConfigured, match="32 random bytes"):
        crypto.parse_master_key(value)


def test_s3_paths_take_the_shop_prefix_per_call(alpha):
    from django_tenants.utils import tenant_context

    from platform_core.storage import ShopS3Storage

    storage = ShopS3Storage(bucket_name="media", access_key="test", secret_key="test", region_name="us-east-1",
                            endpoint_url="http://127.0.0.1:9")
    assert "/platform/logo.png" in storage.url("logo.png")
    with tenant_context(alpha):
        assert "/shops/shop_alpha/logo.png" in storage.url("logo.png")
    assert "/platform/logo.png" in storage.url("logo.png")  # not stuck on the last shop


def test_a_configuration_secret_is_decrypted_once_per_process(alpha, bravo, monkeypatch):
    token = crypto.encrypt(alpha, "sk_live_123", context="plugin:sandbox:api_key")
    crypto.forget_cached_keys()
    opened = []
    original = crypto.decrypt

    def counting(shop, token, *, context):
        opened.append(context)
        return original(shop, token, context=context)

    monkeypatch.setattr(crypto, "decrypt", counting)
    for _ in range(3):
        assert crypto.decrypt_setting(alpha, token, context="plugin:sandbox:api_key") == "sk_live_123"
    assert opened == ["plugin:sandbox:api_key"]
    # remembered for that shop and field only: elsewhere it is refused, every time
    for _ in range(2):
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt_setting(bravo, token, context="plugin:sandbox:api_key")
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt_setting(alpha, token, context="plugin:sandbox:webhook_secret")
    assert len(opened) == 5
    crypto.forget_cached_keys()  # as after a master key change
    assert crypto.decrypt_setting(alpha, token, context="plugin:sandbox:api_key") == "sk_live_123"
    assert len(opened) == 6
