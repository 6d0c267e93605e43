"""The two consoles, both Django admin themed with django-unfold:

* the platform console at ``/console/`` on the platform host, for platform staff;
* the shop console at ``/manage/`` on each shop host, for members of that shop only.
"""
from __future__ import annotations

from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _
from unfold.sites import UnfoldAdminSite

ROLE_CAN_MANAGE = {"owner", "admin"}
ROLE_CAN_SEE_BOOKS = {"owner", "admin", "finance"}


class RateLimitedLoginMixin:
    login_form_path = "platform_core.auth_forms.RateLimitedAuthenticationForm"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from django.utils.module_loading import import_string

        self.login_form = import_string(self.login_form_path)


class PlatformConsole(RateLimitedLoginMixin, UnfoldAdminSite):
    site_header = site_title = _("Kameng platform console")
    index_title = _("Platform")
    settings_name = "UNFOLD"

    def has_permission(self, request):
        user = request.user
        return bool(user.is_active and user.is_staff and getattr(request.tenant, "schema_name", None) == "public")

    def get_urls(self):
        from django.urls import path

        from billing import views as billing_views

        return [
            path("revenue/", self.admin_view(billing_views.revenue_dashboard_view), name="revenue"),
            # the signed token is the permission: a link mailed to the platform owner works without a session
            path("billing/file/<str:token>/", billing_views.signed_file_view, name="billing_file"),
        ] + super().get_urls()


class ShopConsole(RateLimitedLoginMixin, UnfoldAdminSite):
    site_header = site_title = _("Shop console")
    index_title = _("Your shop")
    settings_name = "UNFOLD_SHOP"
    index_template = "kameng/manage/index.html"
    login_form_path = "platform_core.auth_forms.ShopConsoleAuthenticationForm"

    def has_permission(self, request):
        return shop_role(request) is not None

    def each_context(self, request):
        context = super().each_context(request)
        shop = getattr(request, "tenant", None)
        context.update(
            shop=shop,
            shop_role=shop_role(request),
            site_header=getattr(shop, "name", "") or context.get("site_header"),
            site_title=getattr(shop, "name", "") or context.get("site_title"),
        )
        return context

    def get_urls(self):
        from django.urls import path

        from platform_core import console_views as views
        from platform_core.account_console_views import account_console_urls
        from billing.urls import billing_console_urls
        from platform_core.inventory.views import inventory_console_urls
        from platform_core.payments.console_views import reconciliation_console_urls

        extra = [
            path("handoff/", views.handoff_login, name="handoff"),
            path("switch/<slug:slug>/", self.admin_view(views.switch_shop), name="switch"),
            path("plugins/", self.admin_view(views.plugin_list_view), name="plugins"),
            path("plugins/<slug:slug>/", self.admin_view(views.plugin_configure_view), name="plugin_configure"),
            path("plugins/<slug:slug>/toggle/", self.admin_view(views.plugin_toggle_view), name="plugin_toggle"),
            path("plugins/<slug:slug>/fee/", self.admin_view(views.plugin_fee_view), name="plugin_fee"),
            path("plugins/<slug:slug>/test/", self.admin_view(views.plugin_test_connection_view),
                 name="plugin_test_connection"),
            path("settings/", self.admin_view(views.shop_settings_view), name="shop_settings"),
            path("domains/", self.admin_view(views.domain_list_view), name="domains"),
            path("team/", self.admin_view(views.team_view), name="team"),
            path("api-token/", self.admin_view(views.api_token_view), name="api_token"),
            path("domains/<int:domain_id>/verify/", self.admin_view(views.domain_verify_view), name="domain_verify"),
        ] + (billing_console_urls(self.admin_view) + inventory_console_urls(self.admin_view)
             + reconciliation_console_urls(self.admin_view) + account_console_urls(self.admin_view))
        return extra + super().get_urls()


def shop_role(request) -> str | None:
    """The signed-in merchant's role in the shop of this host (None: no access)."""
    cached = getattr(request, "_kameng_shop_role", False)
    if cached is not False:
        return cached
    from tenants.services import membership_for

    shop = getattr(request, "tenant", None)
    role = None
    if shop is not None and getattr(shop, "pk", None) and getattr(request, "user", None) is not None:
        membership = membership_for(request.user, shop)
        role = membership.role if membership else None
    request._kameng_shop_role = role
    return role


def can_manage(request) -> bool:
    return shop_role(request) in ROLE_CAN_MANAGE


def can_see_books(request) -> bool:
    """Payments' books (reconciliation): owner, admins and finance staff."""
    return shop_role(request) in ROLE_CAN_SEE_BOOKS


def my_shops_dropdown(request):
    """Site dropdown: the merchant's other shops, to switch between them."""
    from tenants.models import ShopMembership

    if not request.user.is_authenticated:
        return []
    memberships = (ShopMembership.objects.select_related("shop").filter(merchant=request.user)
                   .exclude(shop_id=getattr(request.tenant, "pk", None)).order_by("shop__name"))
    return [
        {"icon": "storefront", "title": m.shop.name, "link": reverse_lazy("manage:switch", args=[m.shop.slug])}
        for m in memberships if m.shop.slug
    ]


platform_console = PlatformConsole(name="console")
shop_console = ShopConsole(name="manage")
