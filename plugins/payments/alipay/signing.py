"""Alipay open-platform signatures (RSA2 = SHA256withRSA, PKCS#1 v1.5, base64).

Requests: every parameter except ``sign`` whose value is not empty, sorted by name
(byte order), joined as ``k=v&k=v`` with the raw (not URL-encoded) values.
Async notifications: the same, but ``sign`` *and* ``sign_type`` are left out.
Synchronous answers: the raw JSON text of the ``<method>_response`` node is signed.

Pure functions, no Django: the fake gateway in the tests uses them too.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MIN_KEY_BITS = 2048


class KeyFormatError(ValueError):
    """A key the shop pasted is not a usable RSA key; the message says why in plain words."""


def content_to_sign(params: Mapping[str, object], *, exclude: tuple[str, ...] = ("sign",)) -> str:
    """``k=v&…`` over the sorted parameters with a value, leaving out ``exclude``."""
    pairs = []
    for name in sorted(params):
        value = params[name]
        if name in exclude or value is None or value == "":
            continue
        pairs.append(f"{name}={value}")
    return "&".join(pairs)


def notification_content(params: Mapping[str, object]) -> str:
    """What Alipay signed in an async notification: ``sign`` and ``sign_type`` excluded."""
    return content_to_sign(params, exclude=("sign", "sign_type"))


def sign(content: str, private_key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(private_key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(content: str, signature: str, public_key: rsa.RSAPublicKey) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def sign_params(params: Mapping[str, object], private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The request parameters with ``sign`` added."""
    signed = {name: str(value) for name, value in params.items() if value is not None}
    signed["sign"] = sign(content_to_sign(signed), private_key)
    return signed


# --- keys ------------------------------------------------------------------------------

def _bare_base64(text: str) -> bytes | None:
    """Alipay's key tool hands out keys as one base64 line without PEM armour."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """The application private key: PEM (PKCS#8 or PKCS#1) or Alipay's bare base64."""
    text = (text or "").strip()
    if not text:
        raise KeyFormatError("Paste the application private key.")
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            der = _bare_base64(text)
            if der is None:
                raise KeyFormatError("The private key is neither PEM nor base64 text.")
            key = serialization.load_der_private_key(der, password=None)
    except KeyFormatError:
        raise
    except TypeError:
        raise KeyFormatError("The private key is protected by a password; paste it without one.") from None
    except (ValueError, binascii.Error):
        raise KeyFormatError("The private key could not be read: paste the whole key as the Alipay key "
                             "tool shows it.") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError("The private key is not an RSA key; Alipay's RSA2 needs one.")
    if key.key_size < MIN_KEY_BITS:
        raise KeyFormatError(f"The private key has {key.key_size} bits; RSA2 needs at least {MIN_KEY_BITS}.")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """The *Alipay* public key (not the application's own): PEM or bare base64."""
    text = (text or "").strip()
    if not text:
        raise KeyFormatError("Paste the Alipay public key.")
    if "PRIVATE KEY" in text:
        raise KeyFormatError("This is a private key; paste the Alipay public key here.")
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            der = _bare_base64(text)
            if der is None:
                raise KeyFormatError("The Alipay public key is neither PEM nor base64 text.")
            key = serialization.load_der_public_key(der)
    except KeyFormatError:
        raise
    except (ValueError, binascii.Error):
        raise KeyFormatError("The Alipay public key could not be read: copy it again from the Alipay "
                             "open platform (接口加签方式 → 支付宝公钥).") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError("The Alipay public key is not an RSA key.")
    if key.key_size < MIN_KEY_BITS:
        raise KeyFormatError(f"The Alipay public key has {key.key_size} bits; RSA2 keys have at least "
                             f"{MIN_KEY_BITS}.")
    return key


def public_key_text(key: rsa.RSAPublicKey) -> str:
    """Bare base64 SubjectPublicKeyInfo, as the open platform shows it."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def private_key_text(key: rsa.RSAPrivateKey) -> str:
    """Bare base64 PKCS#8, as Alipay's key tool saves it."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return base64.b64encode(der).decode()


# --- synchronous answers -----------------------------------------------------------------

def response_node(raw: str, node: str) -> tuple[dict, str] | None:
    """Find ``"<node>": {…}`` in an answer's raw text: (parsed object, its exact text).

    The signature covers the node's text byte for byte, so it is cut out of the raw
    body rather than re-serialised."""
    try:
        outer = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(outer, dict) or not isinstance(outer.get(node), dict):
        return None
    marker = f'"{node}"'
    start = raw.find(marker)
    if start < 0:
        return None
    colon = raw.find(":", start + len(marker))
    begin = colon + 1
    while begin < len(raw) and raw[begin] in " \t\r\n":
        begin += 1
    try:
        value, end = json.JSONDecoder().raw_decode(raw, begin)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return value, raw[begin:end]
