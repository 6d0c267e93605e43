"""WeChat Pay API v3 signatures and encrypted resources.

* Requests: ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
  signature="…",timestamp="…",serial_no="…"`` where the signature is SHA256withRSA
  (PKCS#1 v1.5, base64) with the merchant key over
  ``"METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n"`` (URL = path and query, BODY empty for GET).
* Answers and notifications: ``Wechatpay-Signature/-Timestamp/-Nonce/-Serial`` headers,
  signed over ``"{ts}\\n{nonce}\\n{body}\\n"`` by the key the serial names: a platform
  certificate (its serial number) or the newer WeChat Pay public key (``PUB_KEY_ID_…``).
* Notification resources: AEAD_AES_256_GCM with the 32-byte APIv3 key, the resource's
  nonce and associated data; the ciphertext carries the 16-byte tag at its end.

Pure functions, no Django: the fake gateway in the tests uses them too.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
TOLERANCE_SECONDS = 300
APIV3_KEY_BYTES = 32
MIN_KEY_BITS = 2048
_AUTH_FIELD_RE = re.compile(r'(\w+)="([^"]*)"')


class KeyFormatError(ValueError):
    """A key or certificate the shop pasted is unusable; the message says why."""


class SignatureError(ValueError):
    """A signed message is not genuine (bad, stale, unknown serial, malformed)."""


# --- signing -----------------------------------------------------------------------------

def request_message(method: str, url: str, timestamp: str, nonce: str, body: str) -> str:
    return f"{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n"


def response_message(timestamp: str, nonce: str, body: str) -> str:
    return f"{timestamp}\n{nonce}\n{body}\n"


def sign(message: str, private_key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(private_key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(message: str, signature: str, public_key: rsa.RSAPublicKey) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


def authorization(*, mchid: str, serial_no: str, private_key: rsa.RSAPrivateKey, method: str, url: str,
                  body: str = "", timestamp: str | None = None, nonce: str | None = None) -> str:
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    signature = sign(request_message(method.upper(), url, timestamp, nonce, body), private_key)
    return (f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def parse_authorization(header: str) -> dict[str, str]:
    """The fields of an ``Authorization`` header; raises SignatureError if it is not ours."""
    scheme, _, rest = (header or "").partition(" ")
    if scheme != SCHEMA:
        raise SignatureError(f"The Authorization scheme must be {SCHEMA}.")
    fields = dict(_AUTH_FIELD_RE.findall(rest))
    missing = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} - set(fields)
    if missing:
        raise SignatureError(f"The Authorization header lacks {', '.join(sorted(missing))}.")
    return fields


def verify_signed_message(*, timestamp: str, nonce: str, signature: str, serial: str, body: str,
                          keys: dict[str, rsa.RSAPublicKey], now: float | None = None,
                          tolerance: int = TOLERANCE_SECONDS) -> None:
    """Check a platform-signed answer or notification; raises SignatureError if it is not genuine."""
    if not (timestamp and nonce and signature and serial):
        raise SignatureError("The Wechatpay-Timestamp, -Nonce, -Signature and -Serial headers are required.")
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        raise SignatureError("Malformed Wechatpay-Timestamp.")
    if len(nonce) > 64 or len(signature) > 1024 or len(serial) > 64:
        raise SignatureError("Oversized Wechatpay headers.")
    now = int(time.time() if now is None else now)
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureError(f"The Wechatpay-Timestamp is more than {tolerance} seconds off.")
    key = keys.get(serial) or keys.get(serial.upper())
    if key is None:
        raise SignatureError("The Wechatpay-Serial names no platform certificate or public key this shop knows.")
    if not verify(response_message(timestamp, nonce, body), signature, key):
        raise SignatureError("The Wechatpay-Signature does not match.")


# --- encrypted resources -------------------------------------------------------------------

def decrypt_resource(resource: dict, apiv3_key: bytes) -> bytes:
    """Plaintext of a notification's ``resource``; raises SignatureError when it does not decrypt."""
    if not isinstance(resource, dict) or resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise SignatureError("The resource is not AEAD_AES_256_GCM.")
    ciphertext, nonce = resource.get("ciphertext"), resource.get("nonce")
    associated = resource.get("associated_data") or ""
    if not isinstance(ciphertext, str) or not isinstance(nonce, str) or not isinstance(associated, str):
        raise SignatureError("The resource lacks ciphertext or nonce.")
    try:
        data = base64.b64decode(ciphertext, validate=True)
        return AESGCM(apiv3_key).decrypt(nonce.encode(), data, associated.encode() or None)
    except (binascii.Error, ValueError, InvalidTag):
        raise SignatureError("The resource does not decrypt with this shop's APIv3 key.") from None


def encrypt_resource(plaintext: bytes, apiv3_key: bytes, *, associated_data: str, original_type: str,
                     nonce: str | None = None) -> dict:
    """The gateway's side of :func:`decrypt_resource` (used by the fake gateway)."""
    nonce = nonce or secrets.token_hex(6)  # 12 characters, as WeChat's nonces
    data = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode() or None)
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(data).decode(),
            "associated_data": associated_data, "original_type": original_type, "nonce": nonce}


# --- keys and certificates --------------------------------------------------------------------

def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """The merchant API private key (``apiclient_key.pem``)."""
    text = (text or "").strip()
    if not text.startswith("-----BEGIN") or "PRIVATE KEY" not in text:
        raise KeyFormatError("Paste the whole apiclient_key.pem, from -----BEGIN PRIVATE KEY----- to the end.")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise KeyFormatError("The private key is protected by a password; paste it without one.") from None
    except ValueError:
        raise KeyFormatError("The private key could not be read; paste apiclient_key.pem unchanged.") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_KEY_BITS:
        raise KeyFormatError("The merchant API key must be an RSA key of at least 2048 bits.")
    return key


def certificate_serial(certificate: x509.Certificate) -> str:
    """Serial number as WeChat writes it: upper-case hex."""
    return format(certificate.serial_number, "X")


def load_certificates(text: str) -> dict[str, x509.Certificate]:
    """One or more PEM platform certificates (several during a rotation), by serial."""
    text = (text or "").strip()
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise KeyFormatError("Paste the WeChat Pay platform certificate, from -----BEGIN CERTIFICATE----- "
                             "to the end.")
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise KeyFormatError("The platform certificate could not be read; paste the PEM text unchanged.") from None
    by_serial = {}
    for certificate in certificates:
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_KEY_BITS:
            raise KeyFormatError("A platform certificate does not hold an RSA key of at least 2048 bits.")
        by_serial[certificate_serial(certificate)] = certificate
    return by_serial


PUBLIC_KEY_ID_RE = re.compile(r"^PUB_KEY_ID_[0-9A-Za-z]{1,64}$")
_PUBLIC_KEY_BLOCK_RE = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


def load_verification_keys(text: str, public_key_id: str = "") -> dict[str, rsa.RSAPublicKey]:
    """The keys WeChat may sign with, by the value of ``Wechatpay-Serial``: platform
    certificates (by serial number) and/or the WeChat Pay public key (by its
    ``PUB_KEY_ID_…``), pasted one after another while an account moves between them."""
    text = (text or "").strip()
    public_blocks = _PUBLIC_KEY_BLOCK_RE.findall(text)
    rest = _PUBLIC_KEY_BLOCK_RE.sub("", text).strip()
    if not public_blocks and "-----BEGIN CERTIFICATE-----" not in rest:
        raise KeyFormatError("Paste the WeChat Pay platform certificate (-----BEGIN CERTIFICATE-----) or the WeChat "
                             "Pay public key (-----BEGIN PUBLIC KEY-----).")
    keys: dict[str, rsa.RSAPublicKey] = {}
    if rest:
        keys.update({serial: certificate.public_key() for serial, certificate in load_certificates(rest).items()})
    if len(public_blocks) > 1:
        raise KeyFormatError("Paste one WeChat Pay public key (with its ID), not several.")
    if public_blocks:
        if not PUBLIC_KEY_ID_RE.match(public_key_id or ""):
            raise KeyFormatError("A WeChat Pay public key needs its public key ID (PUB_KEY_ID_ followed by letters "
                                 "and digits), shown next to it on pay.weixin.qq.com.")
        try:
            key = serialization.load_pem_public_key(public_blocks[0].encode())
        except ValueError:
            raise KeyFormatError("The WeChat Pay public key could not be read; paste the PEM text unchanged.") from None
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_KEY_BITS:
            raise KeyFormatError("The WeChat Pay public key is not an RSA key of at least 2048 bits.")
        keys[public_key_id] = key
    elif public_key_id:
        raise KeyFormatError("A public key ID is set but no WeChat Pay public key is pasted.")
    return keys


def apiv3_key_bytes(text: str) -> bytes:
    data = (text or "").encode("utf-8")
    if len(data) != APIV3_KEY_BYTES:
        raise KeyFormatError(f"The APIv3 key is exactly {APIV3_KEY_BYTES} characters (letters and digits); "
                             f"this one has {len(data)}.")
    return data
