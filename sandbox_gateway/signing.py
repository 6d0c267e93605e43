"""The webhook signature of the sandbox gateway (Stripe's scheme, our header name).

    Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw body}")>

The secret a merchant verifies with is derived from its API key, so a shop that
knows its key needs no second setting, and a leaked webhook secret does not give
access to the API (the derivation is one-way)."""
from __future__ import annotations

import hashlib
import hmac

HEADER = "Sandbox-Signature"
_DERIVATION_LABEL = b"kameng-sandbox-webhook-secret-v1"


def webhook_secret_for(api_key: str) -> str:
    return "whsec_" + hmac.new(api_key.encode(), _DERIVATION_LABEL, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"
