"""Sign-in forms with a rate limit per client and per account (R5)."""
from django.core.exceptions import ValidationError
from unfold.forms import AuthenticationForm

from platform_core.ratelimit import rate_limited

ATTEMPTS_PER_MINUTE = 10


class RateLimitedAuthenticationForm(AuthenticationForm):
    def clean(self):
        email = (self.data.get("username") or "").strip().lower()
        if self.request is not None and (
            rate_limited(self.request, "login-ip", limit=ATTEMPTS_PER_MINUTE * 3, window_seconds=60)
            or rate_limited(self.request, "login-account", limit=ATTEMPTS_PER_MINUTE, window_seconds=60, key=email)
        ):
            raise ValidationError("Too many sign-in attempts. Wait a minute and try again.", code="rate_limited")
        return super().clean()


class ShopConsoleAuthenticationForm(RateLimitedAuthenticationForm):
    """The shop console's sign-in: members of the shop of this host, staff or not
    (``is_staff`` means platform staff; the admin form would refuse every shop owner)."""

    def confirm_login_allowed(self, user):
        from tenants.services import membership_for

        shop = getattr(self.request, "tenant", None)
        if not user.is_active or not getattr(shop, "pk", None) or membership_for(user, shop) is None:
            raise ValidationError("Please enter the e-mail and password of a member of this shop.",
                                  code="invalid_login")
