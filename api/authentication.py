"""API token authentication: DRF's ``Authorization: Token <key>``, with the merchant
read by one statement built once (``platform_core.db.rows``) instead of the ORM's
join compiled on every request; integrations send it with every call."""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from platform_core.db.rows import select_row
from tenants.models import Merchant


class ApiTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user = select_row(Merchant, "id = (SELECT user_id FROM authtoken_token WHERE key = %s)", [key])
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token = Token(key=key, user=user)  # request.auth: the key and its merchant (not its creation time)
        return user, token
