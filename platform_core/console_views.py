"""Shop-console pages that are not plain model admins: sign-in hand-off, shop
switching, plugins, shop settings and custom domains. Views stay thin: they call
services and render."""
from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from platform_core.admin_sites import can_manage, shop_console
from platform_core.money import exponent, parse_major
from platform_core.payments import selectors as payment_selectors
from platform_core.payments.services import FeeError, payment_method_fee_set
from plugins import selectors as plugin_selectors
from plugins import services as plugin_services
from plugins.models import PluginConfig
from plugins.payment import PaymentPlugin
from plugins.registry import UnknownPlugin, get_plugin_class
from tenants import services as shop_services
from tenants.handoff import HandoffError, handoff_redeem, handoff_token
from tenants.models import Domain, Shop, ShopMembership


def _render(request, template, title, **context):
    return TemplateResponse(request, template, {**shop_console.each_context(request), "title": title, **context})


def _require_manage(request):
    if not can_manage(request):
        raise PermissionDenied("Only the shop's owner and admins can change this.")


def handoff_login(request):
    """Redeem a one-time sign-in link made on another host (signup, shop switch)."""
    try:
        merchant = handoff_redeem(request.GET.get("token", ""), shop=request.tenant)
    except HandoffError as exc:
        messages.error(request, str(exc))
        return redirect("manage:login")
    login(request, merchant, backend="django.contrib.auth.backends.ModelBackend")
    return redirect("manage:index")


def switch_shop(request, slug):
    target = Shop.objects.live().filter(slug=slug).first() or Shop.objects.filter(slug=slug).first()
    if target is None or shop_services.membership_for(request.user, target) is None:
        raise Http404("No such shop among yours.")
    token = handoff_token(merchant=request.user, shop=target)
    return HttpResponseRedirect(shop_services.shop_url(target, f"/manage/handoff/?token={token}"))


# --- plugins -------------------------------------------------------------------------

def plugin_list_view(request):
    listing = plugin_selectors.plugin_list(shop=request.tenant)
    return _render(request, "kameng/manage/plugins.html", "Plugins", plugins=listing, can_manage=can_manage(request))


@require_POST
def plugin_toggle_view(request, slug):
    _require_manage(request)
    try:
        if request.POST.get("enable") == "1":
            plugin_services.plugin_enable(shop=request.tenant, slug=slug, actor=request.user, request=request)
            messages.success(request, "Plugin enabled.")
        else:
            plugin_services.plugin_disable(shop=request.tenant, slug=slug, actor=request.user, request=request)
            messages.success(request, "Plugin disabled.")
    except UnknownPlugin:
        raise Http404("No such plugin.") from None
    except plugin_services.PluginError as exc:
        messages.error(request, exc.message)
        return redirect("manage:plugin_configure", slug=slug)
    return redirect("manage:plugins")


@require_POST
def plugin_test_connection_view(request, slug):
    _require_manage(request)
    try:
        messages.success(request, plugin_services.plugin_test_connection(shop=request.tenant, slug=slug,
                                                                         actor=request.user, request=request))
    except UnknownPlugin:
        raise Http404("No such plugin.") from None
    except plugin_services.PluginError as exc:
        messages.error(request, exc.message)
    return redirect("manage:plugin_configure", slug=slug)


def plugin_configure_view(request, slug):
    try:
        plugin_class = get_plugin_class(slug)
    except UnknownPlugin:
        raise Http404("No such plugin.") from None
    config = PluginConfig.objects.filter(slug=slug).first()
    form = plugin_services.settings_form_for(plugin_class, config)
    if request.method == "POST":
        _require_manage(request)
        data = request.POST.dict()
        enable = request.POST.get("enabled") == "on"
        try:
            plugin_services.plugin_configure(shop=request.tenant, slug=slug, data=data, enable=enable,
                                             actor=request.user, request=request)
        except plugin_services.PluginError as exc:
            form = plugin_services.settings_form_for(plugin_class, config, data=request.POST)
            if form is not None:
                form.is_valid()
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{plugin_class.name} saved.")
            return redirect("manage:plugins")
    return _render(
        request, "kameng/manage/plugin_configure.html", f"{plugin_class.name}", plugin=plugin_class, form=form,
        fee_form=_fee_form_for(request, plugin_class),
        config=config, can_manage=can_manage(request),
        unavailable_reason=plugin_class.unavailable_reason(request.tenant),
        stored_secrets=sorted((config.secrets or {}).keys()) if config else [],
        can_test_connection=getattr(plugin_class, "supports_test_connection", False),
        service_name=getattr(plugin_class, "gateway_name", "") or plugin_class.name,
    )


class PaymentFeeForm(forms.Form):
    """A payment method's fee, in the shop's currency and in percent (the service takes
    minor units and basis points)."""

    fixed = forms.CharField(max_length=12, initial="0", label="Fixed fee",
                            help_text="Added to every payment with this method, in the shop's currency, e.g. 0.10.")
    percent = forms.DecimalField(min_value=0, max_value=20, decimal_places=2, initial=0, label="Percentage",
                                 help_text="Of the order total, e.g. 0.6 for 0.6 %; at most 20 %.")
    passed_to_buyer = forms.BooleanField(required=False, label="The buyer pays this fee",
                                         help_text="Added to what the buyer pays and shown before paying. "
                                                   "Unticked: the shop bears it and it is only recorded.")

    def __init__(self, *args, currency: str = "CNY", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency

    def clean_fixed(self) -> int:
        try:
            return parse_major(self.cleaned_data["fixed"], self.currency)
        except (ValueError, ArithmeticError):
            raise forms.ValidationError(f"Enter an amount like 0.10 (at most {exponent(self.currency)} decimals, "
                                        f"no sign).") from None

    def basis_points(self) -> int:
        return int(self.cleaned_data["percent"] * 100)


def _fee_form_for(request, plugin_class, data=None) -> PaymentFeeForm | None:
    """The fee form of a payment method that may carry a fee (not the wallet)."""
    if not issubclass(plugin_class, PaymentPlugin) or not plugin_class.takes_fees():
        return None
    currency = request.tenant.currency
    rule = payment_selectors.payment_method_fee_get(plugin_class.slug)
    digits = exponent(currency)
    initial = {"fixed": f"{Decimal(rule.fixed if rule else 0).scaleb(-digits):.{digits}f}",
               "percent": Decimal(rule.basis_points if rule else 0).scaleb(-2),
               "passed_to_buyer": rule.passed_to_buyer if rule else False}
    return PaymentFeeForm(data, currency=currency, initial=initial, prefix="fee")


@require_POST
def plugin_fee_view(request, slug):
    """Save a payment method's fee (its own small form on the plugin's settings page)."""
    _require_manage(request)
    try:
        plugin_class = get_plugin_class(slug)
    except UnknownPlugin:
        raise Http404("No such plugin.") from None
    form = _fee_form_for(request, plugin_class, data=request.POST)
    if form is None:
        raise Http404("This plugin takes no payment fee.")
    if form.is_valid():
        try:
            payment_method_fee_set(provider_slug=slug, fixed=form.cleaned_data["fixed"],
                                   basis_points=form.basis_points(),
                                   passed_to_buyer=form.cleaned_data["passed_to_buyer"], actor=request.user,
                                   request=request)
        except FeeError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Payment fee for {plugin_class.name} saved.")
            return redirect("manage:plugin_configure", slug=slug)
    else:
        messages.error(request, "Fee not saved: " + "; ".join(
            f"{form.fields[name].label if name in form.fields else name}: {errors[0]}"
            for name, errors in form.errors.items()))
    return redirect("manage:plugin_configure", slug=slug)


# --- shop settings -------------------------------------------------------------------

class ShopSettingsForm(forms.ModelForm):
    class Meta:
        model = Shop
        fields = ["name", "language", "currency", "primary_color", "accent_color", "logo"]
        widgets = {"primary_color": forms.TextInput(attrs={"type": "color"}),
                   "accent_color": forms.TextInput(attrs={"type": "color"})}

    def clean_currency(self):
        currency = self.cleaned_data["currency"].upper()
        if len(currency) != 3 or not currency.isalpha():
            raise forms.ValidationError("Use a three-letter ISO currency code such as CNY.")
        return currency


def shop_settings_view(request):
    _require_manage(request)
    shop = Shop.objects.get(pk=request.tenant.pk)
    form = ShopSettingsForm(request.POST or None, request.FILES or None, instance=shop)
    if request.method == "POST" and form.is_valid():
        shop_services.shop_update_settings(shop=shop, changes=form.cleaned_data, actor=request.user, request=request)
        messages.success(request, "Shop settings saved.")
        return redirect("manage:shop_settings")
    return _render(request, "kameng/manage/form_page.html", "Shop settings", form=form, multipart=True)


# --- domains -------------------------------------------------------------------------

class DomainForm(forms.Form):
    domain = forms.CharField(max_length=253, label="Custom domain", help_text="e.g. shop.example.com")


def domain_list_view(request):
    form = DomainForm(request.POST or None)
    if request.method == "POST":
        _require_manage(request)
        if form.is_valid():
            try:
                shop_services.domain_add(shop=request.tenant, hostname=form.cleaned_data["domain"],
                                         actor=request.user, request=request)
            except shop_services.ShopCreationError as exc:
                form.add_error("domain", exc.message)
            else:
                messages.success(request, "Domain added. Create the DNS TXT record shown, then press Verify.")
                return redirect("manage:domains")
    domains = Domain.objects.filter(tenant=request.tenant).order_by("-is_primary", "domain")
    return _render(request, "kameng/manage/domains.html", "Domains", domains=domains, form=form,
                   can_manage=can_manage(request))


@require_POST
def domain_verify_view(request, domain_id):
    _require_manage(request)
    domain = Domain.objects.filter(pk=domain_id, tenant=request.tenant).first()
    if domain is None:
        raise Http404("No such domain in this shop.")
    if shop_services.domain_verify(domain=domain, actor=request.user, request=request):
        messages.success(request, f"{domain.domain} is verified and now routes to your shop.")
    else:
        messages.error(request, f"Not verified yet: {domain.last_check_error}")
    return redirect(reverse("manage:domains"))


# --- team and API token --------------------------------------------------------------

class MemberForm(forms.Form):
    email = forms.EmailField(label="E-mail of their Kameng account")
    role = forms.ChoiceField(choices=ShopMembership.Role.choices, initial=ShopMembership.Role.STAFF)


def team_view(request):
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        _require_manage(request)
        if "remove" in request.POST:
            membership = ShopMembership.objects.filter(pk=request.POST["remove"], shop=request.tenant).first()
            if membership is None:
                raise Http404("No such member.")
            try:
                shop_services.membership_remove(membership=membership, actor=request.user, request=request)
                messages.success(request, f"{membership.merchant.email} removed.")
            except shop_services.ShopCreationError as exc:
                messages.error(request, exc.message)
            return redirect("manage:team")
        if form.is_valid():
            try:
                shop_services.membership_add(shop=request.tenant, email=form.cleaned_data["email"],
                                             role=form.cleaned_data["role"], actor=request.user, request=request)
            except shop_services.ShopCreationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, "Member added.")
                return redirect("manage:team")
    members = ShopMembership.objects.select_related("merchant").filter(shop=request.tenant).order_by("role", "merchant__email")
    return _render(request, "kameng/manage/team.html", "Team", members=members, form=form,
                   can_manage=can_manage(request))


def api_token_view(request):
    """The signed-in merchant's API token (one per account, valid on their shops only)."""
    from rest_framework.authtoken.models import Token

    token = Token.objects.filter(user=request.user).first()
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        token = Token.objects.create(user=request.user)
        from platform_core.audit.services import audit_record

        audit_record(action="api_token.created", actor=request.user, request=request)
        messages.success(request, "New token created; the previous one no longer works.")
    return _render(request, "kameng/manage/api_token.html", "API token", token=token)
