"""EPay (易支付) signatures: MD5 over the sorted non-empty parameters, ``sign`` and
``sign_type`` left out, joined as ``k=v&k=v`` with the merchant key appended directly
(no separator), lower-case hex. Weak on purpose of the protocol: a notify is only ever
a trigger to ask the gateway (see plugin.py). Pure functions, no Django."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

EXCLUDED = ("sign", "sign_type")


def content_to_sign(params: Mapping[str, object]) -> str:
    return "&".join(f"{name}={params[name]}" for name in sorted(params)
                    if name not in EXCLUDED and params[name] is not None and params[name] != "")


def sign(params: Mapping[str, object], key: str) -> str:
    return hashlib.md5((content_to_sign(params) + key).encode("utf-8")).hexdigest()


def verify(params: Mapping[str, object], key: str) -> bool:
    signature = params.get("sign")
    if not isinstance(signature, str) or len(signature) != 32:
        return False
    return hmac.compare_digest(sign(params, key), signature.lower())


def sign_params(params: Mapping[str, object], key: str) -> dict[str, str]:
    signed = {name: str(value) for name, value in params.items() if value is not None}
    signed["sign"] = sign(signed, key)
    signed["sign_type"] = "MD5"
    return signed
