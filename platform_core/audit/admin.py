"""The audit log, read-only, in both consoles (each shows its own schema's events)."""
from django.contrib import admin
from unfold.admin import ModelAdmin

from platform_core.admin_sites import can_manage, platform_console, shop_console
from platform_core.audit.models import AuditEvent


class AuditEventAdmin(ModelAdmin):
    list_display = ("created_at", "actor_email", "action", "target_type", "target_id", "reason")
    list_filter = ("action",)
    search_fields = ("actor_email", "action", "target_id", "reason")
    readonly_fields = ("created_at", "actor_id", "actor_email", "action", "target_type", "target_id", "shop_slug",
                       "reason", "data", "ip")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PlatformAuditAdmin(AuditEventAdmin):
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    has_view_permission = lambda self, request, obj=None: self.has_module_permission(request)  # noqa: E731


class ShopAuditAdmin(AuditEventAdmin):
    def has_module_permission(self, request):
        return can_manage(request)

    has_view_permission = lambda self, request, obj=None: self.has_module_permission(request)  # noqa: E731


platform_console.register(AuditEvent, PlatformAuditAdmin)
shop_console.register(AuditEvent, ShopAuditAdmin)
