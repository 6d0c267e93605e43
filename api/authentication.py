"""API token authentication: DRF's ``Authorization: Token <key>``, with the merchant
read by one statement built once (``platform_core.db.rows``) instead of the ORM's
join compiled on every request; integrations send it with every call. The same
statement reads the merchant's membership of the called shop, which every permission
check asks for next (``tenants.services.membership_for``)."""
from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from platform_core.cache import fresh_copies_of
from platform_core.db.rows import new_row, select_joined
from tenants.models import Merchant, ShopMembership
from tenants.services import remember_membership


#: per process: (token key, shop id) -> (copiers of the merchant and its membership, monotonic
#: time it expires), for KAMENG_CACHE_PROCESS_SECONDS (decision 0048): an integration sends
#: its token with every call, and reading the merchant was a database round trip each time
_recently_authenticated: dict[tuple[str, int | None], tuple[Callable, Callable | None, float]] = {}
_AUTHENTICATED_KEPT = 10_000


def forget_authenticated(**_signal) -> None:
    """Forget every remembered token (a token, merchant or membership changed through
    this process: it applies to the next request at once)."""
    _recently_authenticated.clear()


class ApiTokenAuthentication(TokenAuthentication):
    shop_id = None

    def authenticate(self, request):
        # DRF makes an authenticator per request: the shop of this one
        self.shop_id = getattr(getattr(request, "tenant", None), "pk", None)
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        found = self._remembered(key)
        if found is None:
            found = select_joined((Merchant, ShopMembership),
                                  "LEFT JOIN tenants_shopmembership t1 ON t1.merchant_id = t0.id AND t1.shop_id = %s",
                                  "t0.id = (SELECT user_id FROM authtoken_token WHERE key = %s)", [self.shop_id, key],
                                  suffix="ORDER BY t1.id LIMIT 1")
            self._remember(key, found)
        user = found[0] if found else None
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if self.shop_id is not None:
            remember_membership(user, self.shop_id, found[1])
        token = new_row(Token, key=key, user=user)  # request.auth: the key and its merchant (not its creation time)
        return user, token

    def _remembered(self, key: str) -> tuple | None:
        entry = _recently_authenticated.get((key, self.shop_id))
        if entry is None or entry[2] <= time.monotonic():
            return None
        merchant, membership, _ = entry
        return merchant(), membership() if membership is not None else None

    def _remember(self, key: str, found: tuple | None) -> None:
        """Only a token that authenticates is kept: a wrong key is read from the database each time."""
        seconds = settings.KAMENG_CACHE_PROCESS_SECONDS
        if seconds <= 0 or found is None or found[0] is None or not found[0].is_active:
            return
        merchant = fresh_copies_of(found[0])
        membership = fresh_copies_of(found[1]) if found[1] is not None else None
        if merchant is None or (found[1] is not None and membership is None):
            return
        if len(_recently_authenticated) >= _AUTHENTICATED_KEPT:
            _recently_authenticated.clear()
        _recently_authenticated[(key, self.shop_id)] = (merchant, membership, time.monotonic() + seconds)
