"""Import history in the shop console, read-only. Keys themselves have no model admin:
they are listed masked, revealed and voided through the stock pages (views.py), where
each of those actions is audited."""
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from platform_core.admin_sites import shop_console
from platform_core.inventory.models import ImportBatch


class ImportBatchAdmin(ModelAdmin):
    list_display = ("id", "sku", "source", "filename", "status", "imported", "duplicates", "invalid",
                    "created_by_email", "created_at", "progress_link")
    list_filter = ("status", "source")
    search_fields = ("filename", "created_by_email")
    list_select_related = ("sku__product",)
    readonly_fields = ("sku", "source", "filename", "status", "total_lines", "processed_lines", "imported",
                       "duplicates", "invalid", "errors", "message", "created_by_email", "created_at", "finished_at")

    @admin.display(description="Progress")
    def progress_link(self, batch):
        try:
            url = reverse("manage:stock_batch", args=[batch.pk])
        except NoReverseMatch:  # the stock pages are not wired into the console
            return "—"
        return format_html('<a class="text-primary-600" href="{}">open</a>', url)

    def has_module_permission(self, request):
        return shop_console.has_permission(request)

    def has_view_permission(self, request, obj=None):
        return shop_console.has_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


shop_console.register(ImportBatch, ImportBatchAdmin)
