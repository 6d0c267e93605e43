"""One-time sign-in links that carry a merchant from one host to a shop host.

Sessions are bound to one host, so after signup (platform host) or when switching
shops, we hand the merchant a signed, short-lived, single-use token for the target
shop host only."""
from __future__ import annotations

import secrets

from django.core import signing
from django.core.cache import cache
from django_tenants.utils import schema_context

SALT = "kameng.handoff.v1"
MAX_AGE_SECONDS = 120


class HandoffError(Exception):
    pass


def handoff_token(*, merchant, shop) -> str:
    return signing.dumps({"m": merchant.pk, "s": shop.pk, "n": secrets.token_urlsafe(16)}, salt=SALT)


def handoff_redeem(token: str, *, shop):
    """The merchant the token was made for, if it is fresh, unused and for ``shop``."""
    from tenants.models import Merchant
    from tenants.services import membership_for

    try:
        data = signing.loads(token or "", salt=SALT, max_age=MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise HandoffError("This sign-in link has expired; sign in again.") from None
    except signing.BadSignature:
        raise HandoffError("This sign-in link is not valid.") from None
    if data.get("s") != shop.pk:
        raise HandoffError("This sign-in link is for another shop.")
    with schema_context("public"):
        first_use = cache.add(f"handoff:{data['n']}", 1, MAX_AGE_SECONDS * 2)
    if not first_use:
        raise HandoffError("This sign-in link was already used.")
    merchant = Merchant.objects.filter(pk=data.get("m"), is_active=True).first()
    if merchant is None or membership_for(merchant, shop) is None:
        raise HandoffError("You are not a member of this shop.")
    return merchant
