"""Shop console (``/manage/``): categories and products with their SKUs and wholesale
prices. Every save goes through ``catalog.services`` (validation, sanitised
descriptions, audit log); the forms only translate between the page and the services."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import connection, transaction
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.widgets import UnfoldAdminTextareaWidget, UnfoldAdminTextInputWidget

from platform_core.admin_sites import can_manage, shop_console, shop_role
from platform_core.catalog import selectors, services
from platform_core.catalog.models import SKU, Category, Product
from platform_core.money import SYMBOLS, exponent, format_minor, parse_major

STOCK_PAGE = "/manage/stock/"


class ShopRoleAccess:
    """Any member of the shop may look; only its owner and admins may change.
    Deleting is off unless an admin class allows it (hide or deactivate instead).
    The audit log, not Django's admin history, records what changed."""

    def has_module_permission(self, request):
        return shop_role(request) is not None

    def has_view_permission(self, request, obj=None):
        return shop_role(request) is not None

    def has_add_permission(self, request, *args):
        return can_manage(request)

    def has_change_permission(self, request, obj=None):
        return can_manage(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_manage_permission(self, request, obj=None):
        """Used by the console's action buttons (refund, cancel, …)."""
        return can_manage(request)

    def construct_change_message(self, *args, **kwargs):
        return []  # admin history is off; catalog services write the audit log

    def log_addition(self, *args, **kwargs):
        return None

    def log_change(self, *args, **kwargs):
        return None

    def log_deletion(self, *args, **kwargs):
        return None

    def log_deletions(self, *args, **kwargs):
        return None


class ReadOnlyInline(TabularInline):
    hide_title = True  # rows are self-explanatory; "OrderLine object (1)" is noise
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None):
        return shop_role(request) is not None

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- money in forms ------------------------------------------------------------------

def shop_currency() -> str:
    return getattr(getattr(connection, "tenant", None), "currency", None) or "CNY"


def minor_to_major_text(amount: int, currency: str) -> str:
    """1234 -> "12.34" for an input box (no symbol, no thousands separator)."""
    places = exponent(currency)
    if not places:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10 ** places)
    return f"{sign}{whole}.{fraction:0{places}d}"


def parse_amount(text: str, currency: str) -> int:
    """ "12.34" -> 1234 minor units; refuses more decimals than the currency has,
    negative, non-finite and absurdly large amounts. Raises ``ValueError``."""
    text = (text or "").strip().replace(",", "").replace(" ", "")
    symbol = SYMBOLS.get(currency, "")
    if symbol and text.startswith(symbol):
        text = text[len(symbol):]
    if not text or len(text) > 20 or not all(ch.isdigit() or ch in ".-" for ch in text):
        raise ValueError("Enter an amount such as 12.34.")
    if text.startswith("-"):
        raise ValueError("Enter an amount of zero or more.")
    minor = parse_major(text, currency)
    if minor > services.MAX_PRICE_MINOR:
        raise ValueError(f"Enter an amount up to {format_minor(services.MAX_PRICE_MINOR, currency)}.")
    return minor


class MajorUnitsField(forms.CharField):
    """An amount typed in major units ("12.34") and stored as integer minor units (1234)."""

    def __init__(self, *args, **kwargs):
        # no max_length: its validator would measure the parsed integer (parse_amount bounds the text)
        kwargs.setdefault("widget", UnfoldAdminTextInputWidget(attrs={"inputmode": "decimal", "maxlength": 24}))
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return minor_to_major_text(value, shop_currency())
        return value

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return parse_amount(text, shop_currency())
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid_amount") from None


def parse_tiers(text: str, currency: str) -> list[tuple[int, int]]:
    """ "10: 9.50, 100: 9.00" -> [(10, 950), (100, 900)]. Raises ``ValueError``."""
    tiers = []
    for chunk in (text or "").replace("\n", ",").replace(";", ",").split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        quantity, sep, price = chunk.partition(":")
        if not sep or not quantity.strip().isdigit():
            raise ValueError(f"Write each tier as “quantity: unit price”, e.g. 10: 9.50 (not “{chunk}”).")
        tiers.append((int(quantity), parse_amount(price, currency)))
    return tiers


def format_tiers(tiers, currency: str) -> str:
    return ", ".join(f"{tier.min_quantity}: {minor_to_major_text(tier.unit_price, currency)}" for tier in tiers)


def _service_error_to_form(form: forms.Form, exc: services.CatalogError) -> None:
    field = exc.field.split(".")[-1].split("[")[0] if exc.field else None
    form.add_error(field if field in form.fields else None, exc.message)


# --- categories ----------------------------------------------------------------------

class CategoryForm(forms.ModelForm):
    class Meta:
        model = Category
        fields = ["name", "parent", "sort_order", "is_visible"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "parent" in self.fields:  # absent on the read-only page of staff members
            parents = Category.objects.filter(parent__isnull=True)
            if self.instance.pk:
                parents = parents.exclude(pk=self.instance.pk)
            self.fields["parent"].queryset = parents

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                services.check_category({k: cleaned[k] for k in services.CATEGORY_FIELDS if k in cleaned},
                                        self.instance if self.instance.pk else None)
            except services.CatalogError as exc:
                _service_error_to_form(self, exc)
        return cleaned


def _copy_into(target, saved) -> None:
    """Admin keeps using its own instance: give it what the service saved."""
    for field in type(saved)._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False


@admin.register(Category, site=shop_console)
class CategoryAdmin(ShopRoleAccess, ModelAdmin):
    form = CategoryForm
    list_display = ("name", "parent", "sort_order", "is_visible", "product_count")
    list_filter = ("is_visible",)
    search_fields = ("name",)

    def get_queryset(self, request):
        return selectors.category_list()

    @admin.display(description="Products")
    def product_count(self, obj):
        return obj.product_count

    def has_delete_permission(self, request, obj=None):
        return can_manage(request)

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in services.CATEGORY_FIELDS}
        if change:
            changes = {k: v for k, v in values.items() if k in form.changed_data}
            saved = services.category_update(category=obj, changes=changes, actor=request.user, request=request)
        else:
            saved = services.category_create(actor=request.user, request=request, **values)
        _copy_into(obj, saved)

    def delete_model(self, request, obj):
        services.category_delete(category=obj, actor=request.user, request=request)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for category in queryset.order_by("-parent_id"):  # children before their parents
                services.category_delete(category=category, actor=request.user, request=request)


# --- products and SKUs ---------------------------------------------------------------

class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = list(services.PRODUCT_FIELDS)
        widgets = {"description": UnfoldAdminTextareaWidget(attrs={"rows": 8})}

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            values = {k: cleaned[k] for k in services.PRODUCT_FIELDS if k in cleaned and k != "image"}
            try:
                services.check_product(values, self.instance if self.instance.pk else None)
            except services.CatalogError as exc:
                _service_error_to_form(self, exc)
        return cleaned


class SKUForm(forms.ModelForm):
    price = MajorUnitsField(help_text="e.g. 12.34")
    wholesale = forms.CharField(required=False, label="Wholesale prices", max_length=500,
                                widget=UnfoldAdminTextInputWidget(attrs={"placeholder": "10: 9.50, 100: 9.00"}),
                                help_text="From a quantity on, a lower unit price: “10: 9.50, 100: 9.00”.")

    class Meta:
        model = SKU
        fields = ["name", "price", "is_active", "sort_order", "issue_order"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["wholesale"] = format_tiers(self.instance.wholesale_prices.all(), shop_currency())

    def clean_wholesale(self):
        try:
            return parse_tiers(self.cleaned_data.get("wholesale", ""), shop_currency())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        if self.errors or cleaned.get("DELETE"):
            return cleaned
        try:
            services.check_sku({k: cleaned[k] for k in services.SKU_FIELDS if k in cleaned})
            services.check_tiers(cleaned["price"], cleaned.get("wholesale") or [])
        except services.CatalogError as exc:
            if exc.field.startswith("wholesale_prices"):
                self.add_error("wholesale", exc.message)
            else:
                _service_error_to_form(self, exc)
        return cleaned


class SKUInline(TabularInline):
    model = SKU
    form = SKUForm
    hide_title = True
    extra = 0
    can_delete = False  # a SKU with keys or orders is deactivated, never deleted
    fields = ("name", "price", "price_formatted", "wholesale", "is_active", "sort_order", "issue_order",
              "available_count", "reserved_count", "sold_count", "stock_link")
    readonly_fields = ("price_formatted", "available_count", "reserved_count", "sold_count", "stock_link")

    min_num = 1  # a product is sold through at least one SKU

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, validate_min=True, **kwargs)

    def has_view_permission(self, request, obj=None):
        return shop_role(request) is not None

    def has_add_permission(self, request, obj=None):
        return can_manage(request)

    def has_change_permission(self, request, obj=None):
        return can_manage(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Price")
    def price_formatted(self, obj):
        return format_minor(obj.price, shop_currency()) if obj.pk else "—"

    @admin.display(description="Wholesale prices")
    def wholesale(self, obj):
        """Shown on the read-only page (staff); editors get the form field instead."""
        return format_tiers(obj.wholesale_prices.all(), shop_currency()) if obj.pk else ""

    @admin.display(description="Keys")
    def stock_link(self, obj):
        if not obj.pk:
            return "—"
        return format_html('<a class="text-primary-600" href="{}?sku={}">Stock &amp; keys</a>', STOCK_PAGE, obj.pk)


@admin.register(Product, site=shop_console)
class ProductAdmin(ShopRoleAccess, ModelAdmin):
    form = ProductForm
    inlines = [SKUInline]
    list_display = ("name", "category", "type", "is_visible", "price_range", "stock_available", "sku_count")
    list_filter = ("type", "is_visible", "category")
    search_fields = ("name",)
    readonly_fields = ("stock_page",)
    fieldsets = (
        (None, {"fields": ("name", "type", "category", "description", "image", "stock_page")}),
        ("Selling", {"fields": ("is_visible", "member_only", "sort_order", "min_quantity", "max_quantity",
                                "low_stock_threshold")}),
        ("Top-up products", {"fields": ("account_pattern", "account_label")}),
    )

    def get_queryset(self, request):
        return selectors.product_list_for_console()

    @admin.display(description="Price")
    def price_range(self, obj):
        if obj.price_low is None:
            return "—"
        currency = shop_currency()
        if obj.price_low == obj.price_high:
            return format_minor(obj.price_low, currency)
        return f"{format_minor(obj.price_low, currency)} – {format_minor(obj.price_high, currency)}"

    @admin.display(description="Available")
    def stock_available(self, obj):
        return obj.stock_available or 0

    @admin.display(description="SKUs")
    def sku_count(self, obj):
        return obj.sku_count

    @admin.display(description="Stock")
    def stock_page(self, obj):
        if not obj or not obj.pk:
            return "Save the product, then import keys on the stock page."
        return format_html('<a class="text-primary-600" href="{}?product={}">Import keys and see stock</a>',
                           STOCK_PAGE, obj.pk)

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in services.PRODUCT_FIELDS if name in form.cleaned_data}
        if change:
            changes = {k: v for k, v in values.items() if k in form.changed_data}
            saved = services.product_update(product=obj, changes=changes, actor=request.user, request=request)
        else:
            saved = services.product_create(actor=request.user, request=request, **values)
        _copy_into(obj, saved)

    def save_formset(self, request, form, formset, change):
        if formset.model is not SKU:
            return super().save_formset(request, form, formset, change)
        product = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for sku_form in formset.forms:
            if not sku_form.has_changed() or not hasattr(sku_form, "cleaned_data"):
                continue
            values = {k: sku_form.cleaned_data[k] for k in services.SKU_FIELDS}
            if sku_form.instance.pk:
                changes = {k: v for k, v in values.items() if k in sku_form.changed_data}
                sku = services.sku_update(sku=sku_form.instance, changes=changes, actor=request.user,
                                          request=request)
            else:
                sku = services.sku_create(product=product, actor=request.user, request=request, **values)
                formset.new_objects.append(sku)
            if "wholesale" in sku_form.changed_data:  # checked against the new price in SKUForm.clean
                services.wholesale_price_set(sku=sku, tiers=sku_form.cleaned_data.get("wholesale") or [],
                                             actor=request.user, request=request)
