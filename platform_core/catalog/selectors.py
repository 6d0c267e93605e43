"""Catalog reads for the shop console and the shop API (the current shop's schema)."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, F, Max, Min, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from platform_core.catalog.models import SKU, Category, Product, WholesalePrice


def category_list() -> QuerySet[Category]:
    """In tree order: each top-level category followed by its sub-categories."""
    return (Category.objects.select_related("parent").annotate(product_count=Count("products"))
            .order_by(Coalesce("parent__sort_order", "sort_order"), Coalesce("parent_id", "id"),
                      F("parent_id").asc(nulls_first=True), "sort_order", "id"))


def category_get(*, category_id: int) -> Category | None:
    return Category.objects.select_related("parent").filter(pk=category_id).first()


def _with_skus(queryset: QuerySet[Product]) -> QuerySet[Product]:
    skus = SKU.objects.order_by("sort_order", "id").prefetch_related(
        Prefetch("wholesale_prices", queryset=WholesalePrice.objects.order_by("min_quantity")))
    return queryset.select_related("category").prefetch_related(Prefetch("skus", queryset=skus))


def product_list(*, category_id: int | None = None, product_type: str | None = None, visible: bool | None = None,
                 search: str = "") -> QuerySet[Product]:
    """Products with their SKUs and wholesale prices; ``category_id`` includes the
    products of its sub-categories."""
    products = Product.objects.all()
    if category_id is not None:
        products = products.filter(Q(category_id=category_id) | Q(category__parent_id=category_id))
    if product_type:
        products = products.filter(type=product_type)
    if visible is not None:
        products = products.filter(is_visible=visible)
    if search:
        products = products.filter(name__icontains=search.strip())  # trigram index
    return _with_skus(products.order_by("sort_order", "id"))


def product_list_for_console() -> QuerySet[Product]:
    """The console's product list: price range and stock summed over the SKUs."""
    return (Product.objects.select_related("category")
            .annotate(price_low=Min("skus__price"), price_high=Max("skus__price"),
                      stock_available=Sum("skus__available_count"), sku_count=Count("skus")))


def product_get(*, product_id: int) -> Product | None:
    return _with_skus(Product.objects.filter(pk=product_id)).first()


def sku_get(*, sku_id: int) -> SKU | None:
    return (SKU.objects.select_related("product")
            .prefetch_related(Prefetch("wholesale_prices", queryset=WholesalePrice.objects.order_by("min_quantity")))
            .filter(pk=sku_id).first())


@dataclass(frozen=True)
class StockCounts:
    sku_id: int
    available: int
    reserved: int
    sold: int


def sku_stock(sku: SKU) -> StockCounts:
    """Counters kept by the inventory services in step with the keys: one row read,
    never a count over the key table."""
    sku = SKU.objects.only("available_count", "reserved_count", "sold_count").get(pk=sku.pk)
    return StockCounts(sku.pk, sku.available_count, sku.reserved_count, sku.sold_count)
