"""Platform console (``/console/``): shops, domains, merchants, memberships."""
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse
from unfold.admin import ModelAdmin, TabularInline

from platform_core.admin_sites import platform_console
from tenants import services
from tenants.models import Domain, Merchant, Shop, ShopMembership


class StaffOnly:
    """Platform staff have the whole platform console; nobody else sees it."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DomainInline(StaffOnly, TabularInline):
    model = Domain
    fields = ("domain", "is_primary", "verified_at", "last_check_error")
    readonly_fields = fields
    extra = 0


class MembershipInline(StaffOnly, TabularInline):
    model = ShopMembership
    fields = ("merchant", "role", "created_at")
    readonly_fields = fields
    extra = 0


class StatusReasonForm(forms.Form):
    reason = forms.CharField(max_length=300, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Kept in the audit log and shown to the shop owner.")


@admin.register(Shop, site=platform_console)
class ShopAdmin(StaffOnly, ModelAdmin):
    list_display = ("slug", "name", "status", "language", "currency", "created_at")
    list_filter = ("status", "language")
    search_fields = ("slug", "name", "domains__domain")
    readonly_fields = ("slug", "schema_name", "status", "status_reason", "created_at", "launched_at")
    fields = ("slug", "name", "status", "status_reason", "schema_name", "language", "currency", "theme",
              "primary_color", "accent_color", "created_at", "launched_at")
    inlines = [DomainInline, MembershipInline]
    actions = ["suspend", "reactivate"]

    def get_queryset(self, request):
        return super().get_queryset(request).real()

    def _set_status(self, request, queryset, status, verb):
        if "apply" in request.POST:
            form = StatusReasonForm(request.POST)
            if form.is_valid():
                for shop in queryset:
                    services.shop_set_status(shop=shop, status=status, reason=form.cleaned_data["reason"],
                                             actor=request.user, request=request)
                self.message_user(request, f"{queryset.count()} shop(s) {verb}.", messages.SUCCESS)
                return None
        else:
            form = StatusReasonForm()
        context = {**self.admin_site.each_context(request), "title": f"{verb.capitalize()} shops", "form": form,
                   "shops": queryset, "action": request.POST.get("action"), "verb": verb,
                   "action_checkbox_name": ACTION_CHECKBOX_NAME, "opts": self.model._meta}
        return TemplateResponse(request, "kameng/console/status_reason.html", context)

    @admin.action(description="Suspend selected shops (asks for a reason)")
    def suspend(self, request, queryset):
        return self._set_status(request, queryset, Shop.Status.SUSPENDED, "suspended")

    @admin.action(description="Reactivate selected shops (asks for a reason)")
    def reactivate(self, request, queryset):
        return self._set_status(request, queryset, Shop.Status.ACTIVE, "reactivated")


@admin.register(Domain, site=platform_console)
class DomainAdmin(StaffOnly, ModelAdmin):
    list_display = ("domain", "tenant", "is_primary", "is_platform_subdomain", "verified_at")
    search_fields = ("domain", "tenant__slug")
    readonly_fields = ("domain", "tenant", "is_primary", "is_platform_subdomain", "verified_at",
                       "verification_token", "last_check_at", "last_check_error")


@admin.register(Merchant, site=platform_console)
class MerchantAdmin(StaffOnly, ModelAdmin):
    list_display = ("email", "name", "is_active", "is_staff", "date_joined", "last_login")
    search_fields = ("email", "name")
    list_filter = ("is_active", "is_staff")
    fields = ("email", "name", "is_active", "is_staff", "date_joined", "last_login")
    readonly_fields = ("email", "date_joined", "last_login")
    inlines = [MembershipInline]


@admin.register(ShopMembership, site=platform_console)
class ShopMembershipAdmin(StaffOnly, ModelAdmin):
    list_display = ("merchant", "shop", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("merchant__email", "shop__slug")
    readonly_fields = ("merchant", "shop", "role", "created_at")
