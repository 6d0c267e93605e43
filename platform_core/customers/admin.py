"""Shop console (``/manage/``): the shop's customers with their wallet balance and a
read-only wallet ledger. Balances only move through ``customers.services``."""
from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin

from platform_core.admin_sites import shop_console
from platform_core.catalog.admin import ReadOnlyInline, ShopRoleAccess, shop_currency
from platform_core.customers.models import Customer, WalletEntry
from platform_core.money import format_minor
from platform_core.orders import selectors


class WalletEntryInline(ReadOnlyInline):
    model = WalletEntry
    fields = ("created_at", "kind", "amount_formatted", "balance_after_formatted", "order", "reference")
    readonly_fields = fields
    verbose_name_plural = "Wallet ledger"
    ordering = ("-id",)

    @admin.display(description="Amount")
    def amount_formatted(self, entry):
        return format_minor(entry.amount, shop_currency())

    @admin.display(description="Balance after")
    def balance_after_formatted(self, entry):
        return format_minor(entry.balance_after, shop_currency())


@admin.register(Customer, site=shop_console)
class CustomerAdmin(ShopRoleAccess, ModelAdmin):
    list_display = ("__str__", "name", "tier", "wallet", "order_count", "is_active", "created_at", "last_login")
    list_filter = ("is_active", "tier")
    search_fields = ("email", "phone", "name")
    show_full_result_count = False
    fields = ("email", "phone", "name", "tier", "wallet", "order_count", "is_active", "created_at", "last_login")
    readonly_fields = fields
    inlines = [WalletEntryInline]

    def get_queryset(self, request):
        return selectors.customer_list()

    def has_add_permission(self, request, *args):
        return False  # buyers sign up on the storefront

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Wallet", ordering="wallet_balance")
    def wallet(self, customer):
        return format_minor(customer.wallet_balance, shop_currency())

    @admin.display(description="Orders")
    def order_count(self, customer):
        return customer.order_count
