"""API token authentication: DRF's ``Authorization: Token <key>``, with the merchant
read by one statement built once (``platform_core.db.rows``) instead of the ORM's
join compiled on every request; integrations send it with every call. The same
statement reads the merchant's membership of the called shop, which every permission
check asks for next (``tenants.services.membership_for``)."""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from platform_core.db.rows import new_row, select_joined
from tenants.models import Merchant, ShopMembership
from tenants.services import remember_membership


class ApiTokenAuthentication(TokenAuthentication):
    shop_id = None

    def authenticate(self, request):
        # DRF makes an authenticator per request: the shop of this one
        self.shop_id = getattr(getattr(request, "tenant", None), "pk", None)
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        found = select_joined((Merchant, ShopMembership),
                              "LEFT JOIN tenants_shopmembership t1 ON t1.merchant_id = t0.id AND t1.shop_id = %s",
                              "t0.id = (SELECT user_id FROM authtoken_token WHERE key = %s)", [self.shop_id, key],
                              suffix="ORDER BY t1.id LIMIT 1")
        user = found[0] if found else None
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if self.shop_id is not None:
            remember_membership(user, self.shop_id, found[1])
        token = new_row(Token, key=key, user=user)  # request.auth: the key and its merchant (not its creation time)
        return user, token
