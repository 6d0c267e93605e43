"""Catalog writes: categories (two levels), products, SKUs and wholesale prices.

Every write validates its input (a :class:`CatalogError` names the field at fault),
runs in one transaction and is recorded in the shop's audit log. The console and the
API both call these functions; neither writes catalog rows itself.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

import nh3
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from billing.limits import limit_refusal
from platform_core.audit.services import audit_record
from platform_core.catalog.models import SKU, Category, Product, WholesalePrice

# Prices are minor units in a BIGINT; an order line multiplies by up to 1,000 units and
# an order sums up to 20 lines, so this ceiling keeps every total far from overflowing.
MAX_PRICE_MINOR = 100_000_000_000  # 1,000,000,000.00 in a two-decimal currency
MAX_ORDER_QUANTITY = 1_000_000
MAX_SORT_ORDER = 1_000_000
MAX_THRESHOLD = 10_000_000
MAX_DESCRIPTION_LENGTH = 100_000

# What a product description may contain: text formatting, lists, links, images and
# simple tables. Scripts, styles, event handlers and javascript: links never survive.
DESCRIPTION_TAGS = {
    "p", "br", "b", "strong", "i", "em", "u", "s", "ul", "ol", "li", "a", "img", "h3", "h4", "blockquote", "code",
    "pre", "hr", "table", "thead", "tbody", "tr", "th", "td", "caption",
}
DESCRIPTION_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"},
                          "th": {"colspan", "rowspan"}, "td": {"colspan", "rowspan"}}
DESCRIPTION_URL_SCHEMES = {"http", "https", "mailto"}

PRODUCT_FIELDS = ("name", "type", "category", "description", "image", "is_visible", "member_only", "sort_order",
                  "min_quantity", "max_quantity", "account_pattern", "account_label", "low_stock_threshold")
SKU_FIELDS = ("name", "price", "is_active", "sort_order", "issue_order")
CATEGORY_FIELDS = ("name", "parent", "sort_order", "is_visible")


class CatalogError(Exception):
    """A catalog change refused; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str = "", code: str = "invalid", status: int = 400):
        super().__init__(message)
        self.message, self.field, self.code, self.status = message, field, code, status


# --- field checks (also used by console forms to show errors next to the field) -----

def sanitize_description(html: str) -> str:
    """Keep basic formatting, links and images; drop scripts, styles and event handlers."""
    return nh3.clean(html or "", tags=DESCRIPTION_TAGS, attributes=DESCRIPTION_ATTRIBUTES,
                     url_schemes=DESCRIPTION_URL_SCHEMES, clean_content_tags={"script", "style"},
                     link_rel="noopener noreferrer nofollow", strip_comments=True)


def _whole_number(value, field: str, *, low: int, high: int, label: str) -> int:
    # bool is an int in Python; True must not become a quantity of 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogError(f"{label} must be a whole number.", field=field)
    if not low <= value <= high:
        raise CatalogError(f"{label} must be between {low:,} and {high:,}.", field=field)
    return value


def check_price(value, field: str = "price") -> int:
    """A price in minor units: an integer from 0 to :data:`MAX_PRICE_MINOR`."""
    return _whole_number(value, field, low=0, high=MAX_PRICE_MINOR, label="Price")


def _text(value, field: str, *, max_length: int, required: bool, label: str) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise CatalogError(f"{label} must be text.", field=field)
    value = value.strip()
    if required and not value:
        raise CatalogError(f"{label} is required.", field=field)
    if len(value) > max_length:
        raise CatalogError(f"{label} is at most {max_length} characters.", field=field)
    return value


def _flag(value, field: str) -> bool:
    if not isinstance(value, bool):
        raise CatalogError("Use true or false.", field=field)
    return value


def _refuse_unknown_fields(values: dict, allowed, kind: str) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise CatalogError(f"Unknown {kind} field {unknown[0]!r}.", field=unknown[0])


def _clean_product(values: dict, current: Product | None = None) -> dict:
    """Validated product fields (only those present in ``values``)."""
    _refuse_unknown_fields(values, PRODUCT_FIELDS, "product")
    clean = {}
    for name, value in values.items():
        if name == "name":
            clean[name] = _text(value, name, max_length=120, required=True, label="Name")
        elif name == "type":
            if value not in Product.Type.values:
                raise CatalogError(f"Type is one of {', '.join(Product.Type.values)}.", field=name)
            clean[name] = value
        elif name == "category":
            if value is not None and not isinstance(value, Category):
                raise CatalogError("Choose a category of this shop.", field=name)
            clean[name] = value
        elif name == "description":
            text = value or ""
            if not isinstance(text, str) or len(text) > MAX_DESCRIPTION_LENGTH:
                raise CatalogError(f"The description is text of at most {MAX_DESCRIPTION_LENGTH:,} characters.",
                                   field=name)
            clean[name] = sanitize_description(text)
        elif name == "image":
            clean[name] = value or ""
        elif name in ("is_visible", "member_only"):
            clean[name] = _flag(value, name)
        elif name == "sort_order":
            clean[name] = _whole_number(value, name, low=-MAX_SORT_ORDER, high=MAX_SORT_ORDER, label="Sort order")
        elif name in ("min_quantity", "max_quantity"):
            label = "Minimum quantity" if name == "min_quantity" else "Maximum quantity"
            clean[name] = _whole_number(value, name, low=1, high=MAX_ORDER_QUANTITY, label=label)
        elif name == "account_pattern":
            pattern = _text(value, name, max_length=200, required=False, label="Account pattern")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise CatalogError(f"The account pattern is not a valid regular expression ({exc}).",
                                   field=name) from None
            clean[name] = pattern
        elif name == "account_label":
            clean[name] = _text(value, name, max_length=60, required=False, label="Account label")
        elif name == "low_stock_threshold":
            clean[name] = _whole_number(value, name, low=0, high=MAX_THRESHOLD, label="Low-stock threshold")
    low = clean.get("min_quantity", getattr(current, "min_quantity", 1))
    high = clean.get("max_quantity", getattr(current, "max_quantity", 100))
    if high < low:
        raise CatalogError("The maximum quantity cannot be below the minimum.", field="max_quantity")
    return clean


def check_product(values: dict, current: Product | None = None) -> dict:
    """Validate product fields without saving (console forms call this in ``clean``)."""
    return _clean_product(values, current)


def _clean_sku(values: dict) -> dict:
    _refuse_unknown_fields(values, SKU_FIELDS, "SKU")
    clean = {}
    for name, value in values.items():
        if name == "name":
            clean[name] = _text(value, name, max_length=60, required=False, label="SKU name")
        elif name == "price":
            clean[name] = check_price(value)
        elif name == "is_active":
            clean[name] = _flag(value, name)
        elif name == "sort_order":
            clean[name] = _whole_number(value, name, low=-MAX_SORT_ORDER, high=MAX_SORT_ORDER, label="Sort order")
        elif name == "issue_order":
            if value not in SKU.IssueOrder.values:
                raise CatalogError(f"Issue order is one of {', '.join(SKU.IssueOrder.values)}.", field=name)
            clean[name] = value
    return clean


def check_sku(values: dict) -> dict:
    return _clean_sku(values)


def _audit_value(value):
    if isinstance(value, Category):
        return value.pk
    if hasattr(value, "name") and not isinstance(value, (str, int, bool)):  # an uploaded image
        return str(value.name)
    return value


def _changes_for_audit(clean: dict) -> dict:
    return {key: ("<html>" if key == "description" else _audit_value(value)) for key, value in clean.items()}


# --- categories ----------------------------------------------------------------------

def _check_parent(parent: Category | None, category: Category | None = None) -> None:
    if parent is None:
        return
    if not isinstance(parent, Category):
        raise CatalogError("Choose a category of this shop as the parent.", field="parent")
    if category is not None and parent.pk == category.pk:
        raise CatalogError("A category cannot be its own parent.", field="parent")
    if parent.parent_id is not None:
        raise CatalogError("Categories have two levels: the parent must be a top-level category.", field="parent")
    if category is not None and category.pk and category.children.exists():
        raise CatalogError("This category has sub-categories, so it must stay at the top level.", field="parent")


def _clean_category(values: dict, category: Category | None = None) -> dict:
    _refuse_unknown_fields(values, CATEGORY_FIELDS, "category")
    clean = {}
    for name, value in values.items():
        if name == "name":
            clean[name] = _text(value, name, max_length=60, required=True, label="Name")
        elif name == "parent":
            _check_parent(value, category)
            clean[name] = value
        elif name == "sort_order":
            clean[name] = _whole_number(value, name, low=-MAX_SORT_ORDER, high=MAX_SORT_ORDER, label="Sort order")
        elif name == "is_visible":
            clean[name] = _flag(value, name)
    return clean


def check_category(values: dict, category: Category | None = None) -> dict:
    return _clean_category(values, category)


def category_create(*, name: str, parent: Category | None = None, sort_order: int = 0, is_visible: bool = True,
                    actor=None, request=None) -> Category:
    clean = _clean_category({"name": name, "parent": parent, "sort_order": sort_order, "is_visible": is_visible})
    with transaction.atomic():
        if clean["parent"] is not None:  # the parent may have become a child meanwhile
            _check_parent(Category.objects.select_for_update().get(pk=clean["parent"].pk))
        category = Category.objects.create(**clean)
        audit_record(action="catalog.category_created", actor=actor, target=category, request=request,
                     data=_changes_for_audit(clean))
    return category


def _update_locked(instance, clean_changes, action: str, *, actor, request, audit_data=None):
    """Lock the row, apply the cleaned changes, save them and audit — the shape every
    catalog update shares. ``clean_changes(locked)`` validates against the locked row."""
    with transaction.atomic():
        locked = type(instance).objects.select_for_update().get(pk=instance.pk)
        clean = clean_changes(locked)
        before = {name: getattr(locked, name) for name in clean}
        for name, value in clean.items():
            setattr(locked, name, value)
        locked.save(update_fields=list(clean) or None)
        audit_record(action=action, actor=actor, target=locked, request=request,
                     data=audit_data(locked, clean, before) if audit_data else _changes_for_audit(clean))
    return locked


def category_update(*, category: Category, changes: dict, actor=None, request=None) -> Category:
    return _update_locked(category, lambda locked: _clean_category(changes, locked), "catalog.category_updated",
                          actor=actor, request=request)


def category_delete(*, category: Category, actor=None, request=None) -> None:
    """Products of the category stay, without a category; sub-categories must go first."""
    with transaction.atomic():
        category = Category.objects.select_for_update().get(pk=category.pk)
        category_id, name = category.pk, category.name
        try:
            with transaction.atomic():
                category.delete()
        except (ProtectedError, IntegrityError):
            raise CatalogError("Delete or move this category's sub-categories first.", field="category",
                               code="has_children", status=409) from None
        audit_record(action="catalog.category_deleted", actor=actor, target=None, request=request,
                     data={"category_id": category_id, "name": name})


# --- products ------------------------------------------------------------------------

def product_create(*, name: str, type: str = Product.Type.CARD_KEY, actor=None, request=None,  # noqa: A002
                   skus: Iterable[dict] = (), **fields) -> Product:
    """Create a product (and, in the same transaction, its SKUs: dicts of SKU fields
    plus an optional ``wholesale_prices`` list of ``(min_quantity, unit_price)``)."""
    clean = _clean_product({"name": name, "type": type, **fields})
    skus = list(skus)
    with transaction.atomic():
        if refusal := limit_refusal(connection.tenant, "products"):
            raise CatalogError(refusal, code="plan_limit", status=403)
        product = Product(**clean)
        product.save()
        audit_record(action="catalog.product_created", actor=actor, target=product, request=request,
                     data=_changes_for_audit(clean))
        for index, sku_values in enumerate(skus):
            sku_values = dict(sku_values)
            tiers = sku_values.pop("wholesale_prices", None)
            try:
                sku = sku_create(product=product, actor=actor, request=request, **sku_values)
                if tiers:
                    wholesale_price_set(sku=sku, tiers=tiers, actor=actor, request=request)
            except CatalogError as exc:
                exc.field = f"skus[{index}].{exc.field}" if exc.field else f"skus[{index}]"
                raise
    return product


def product_update(*, product: Product, changes: dict, actor=None, request=None) -> Product:
    return _update_locked(product, lambda locked: _clean_product(changes, locked), "catalog.product_updated",
                          actor=actor, request=request)


# --- SKUs and wholesale prices -------------------------------------------------------

def sku_create(*, product: Product, price: int, name: str = "", is_active: bool = True, sort_order: int = 0,
               issue_order: str = SKU.IssueOrder.OLDEST, actor=None, request=None) -> SKU:
    clean = _clean_sku({"name": name, "price": price, "is_active": is_active, "sort_order": sort_order,
                        "issue_order": issue_order})
    with transaction.atomic():
        sku = SKU.objects.create(product=product, **clean)
        audit_record(action="catalog.sku_created", actor=actor, target=sku, request=request,
                     data={"product_id": product.pk, **clean})
    return sku


def sku_update(*, sku: SKU, changes: dict, actor=None, request=None) -> SKU:
    return _update_locked(
        sku, lambda locked: _clean_sku(changes), "catalog.sku_updated", actor=actor, request=request,
        audit_data=lambda locked, clean, before: {
            "product_id": locked.product_id, "changes": clean,
            "before": {k: v for k, v in before.items() if v != clean[k]}})


def _clean_tiers(sku: SKU, tiers) -> list[tuple[int, int]]:
    pairs = []
    for index, tier in enumerate(tiers or ()):
        if isinstance(tier, dict):
            tier = (tier.get("min_quantity"), tier.get("unit_price"))
        try:
            quantity, unit_price = tier
        except (TypeError, ValueError):
            raise CatalogError("Each wholesale price is a minimum quantity and a unit price.",
                               field=f"wholesale_prices[{index}]") from None
        _whole_number(quantity, f"wholesale_prices[{index}].min_quantity", low=2, high=MAX_ORDER_QUANTITY,
                      label="The minimum quantity of a wholesale price")
        check_price(unit_price, f"wholesale_prices[{index}].unit_price")
        if unit_price > sku.price:
            raise CatalogError("A wholesale price above the SKU's price would never apply.",
                               field=f"wholesale_prices[{index}].unit_price")
        pairs.append((quantity, unit_price))
    quantities = [quantity for quantity, _ in pairs]
    if len(set(quantities)) != len(quantities):
        raise CatalogError("Each minimum quantity may appear once.", field="wholesale_prices")
    return sorted(pairs)


def wholesale_price_set(*, sku: SKU, tiers, actor=None, request=None) -> list[WholesalePrice]:
    """Replace the SKU's wholesale prices with ``tiers``: ``(min_quantity, unit_price)``
    pairs or dicts with those keys; an empty list removes them all."""
    with transaction.atomic():
        sku = SKU.objects.select_for_update().get(pk=sku.pk)
        pairs = _clean_tiers(sku, tiers)
        WholesalePrice.objects.filter(sku=sku).delete()
        rows = WholesalePrice.objects.bulk_create(
            [WholesalePrice(sku=sku, min_quantity=quantity, unit_price=price) for quantity, price in pairs])
        audit_record(action="catalog.wholesale_prices_set", actor=actor, target=sku, request=request,
                     data={"product_id": sku.product_id, "tiers": [list(pair) for pair in pairs]})
    return rows


def check_tiers(sku_price: int, tiers) -> list[tuple[int, int]]:
    """Validate wholesale tiers against a price that may not be saved yet (console forms)."""
    return _clean_tiers(SKU(price=sku_price), tiers)
