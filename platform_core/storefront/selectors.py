"""Reads for the storefront: what buyers may see, in as few queries as a page needs."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import nh3
from django.core.cache import cache
from django.db.models import Count, Exists, Max, Min, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from platform_core.catalog.models import SKU, Category, Product, WholesalePrice
from platform_core.inventory.models import CardKey
from platform_core.orders.models import Order, OrderLine

HOT_CACHE_KEY = "storefront:hot:v1"
HOT_CACHE_SECONDS = 60
HOT_WINDOW_DAYS = 7
PAID_STATUSES = (Order.Status.PAID, Order.Status.AWAITING_STOCK, Order.Status.PROCESSING,
                 Order.Status.DELIVERED, Order.Status.COMPLETED)
SEARCH_MAX_LENGTH = 60
SESSION_ORDERS_KEY = "storefront_orders"
SESSION_ORDERS_MAX = 50

# description HTML a shop may use; everything else (scripts, styles, handlers) is dropped
DESCRIPTION_TAGS = {"a", "b", "strong", "i", "em", "u", "s", "p", "br", "ul", "ol", "li", "h2", "h3", "h4",
                    "blockquote", "code", "pre", "span", "div", "img", "table", "thead", "tbody", "tr", "th",
                    "td", "hr", "small", "sup", "sub"}
DESCRIPTION_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"},
                          "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}


# --- catalog ---------------------------------------------------------------------------

def categories_tree() -> list[Category]:
    """Visible top-level categories, each with ``visible_children`` (two levels)."""
    children = Prefetch("children", queryset=Category.objects.filter(is_visible=True), to_attr="visible_children")
    return list(Category.objects.filter(parent__isnull=True, is_visible=True).prefetch_related(children))


def category_visible(category_id: int) -> Category | None:
    category = Category.objects.select_related("parent").filter(pk=category_id, is_visible=True).first()
    if category is None or (category.parent_id and not category.parent.is_visible):
        return None
    return category


def _active_sku_filter(prefix: str = "skus__") -> Q:
    return Q(**{f"{prefix}is_active": True})


def products_visible() -> QuerySet[Product]:
    """Visible products that have at least one active SKU, annotated for product cards:
    ``min_price`` / ``max_price`` (cheapest / dearest active SKU), ``stock`` (available keys over active SKUs),
    ``has_loop`` (a reusable key is available)."""
    loop_keys = CardKey.objects.filter(sku__product=OuterRef("pk"), sku__is_active=True, is_loop=True,
                                       status=CardKey.Status.AVAILABLE)
    return (Product.objects.filter(is_visible=True)
            .annotate(min_price=Min("skus__price", filter=_active_sku_filter()),
                      max_price=Max("skus__price", filter=_active_sku_filter()),
                      stock=Sum("skus__available_count", filter=_active_sku_filter()),
                      has_loop=Exists(loop_keys))
            .filter(min_price__isnull=False)
            .order_by("sort_order", "id"))


def products_search(*, query: str = "", category: Category | None = None) -> QuerySet[Product]:
    products = products_visible()
    query = (query or "").strip()[:SEARCH_MAX_LENGTH]
    if query:
        products = products.filter(name__icontains=query)  # served by the trigram index
    if category is not None:
        if category.parent_id is None:
            products = products.filter(Q(category=category) | Q(category__parent=category))
        else:
            products = products.filter(category=category)
    return products


def products_hot(limit: int = 8) -> list[Product]:
    """Best sellers: paid order lines in the last 7 days, most first (visible products only)."""
    ids = cache.get(HOT_CACHE_KEY)
    if ids is None:
        since = timezone.now() - timedelta(days=HOT_WINDOW_DAYS)
        ids = list(OrderLine.objects.filter(order__paid_at__gte=since, order__status__in=PAID_STATUSES,
                                            order__kind=Order.Kind.PURCHASE)
                   .values("sku__product_id").annotate(sales=Count("id"))
                   .order_by("-sales", "sku__product_id").values_list("sku__product_id", flat=True)[:50])
        cache.set(HOT_CACHE_KEY, ids, HOT_CACHE_SECONDS)
    if not ids:
        return []
    by_id = {product.pk: product for product in products_visible().filter(pk__in=ids)}
    return [by_id[pk] for pk in ids if pk in by_id][:limit]


def product_in_stock(product: Product) -> bool:
    """For an annotated product (see :func:`products_visible`)."""
    if product.type != Product.Type.CARD_KEY:
        return True
    return bool(product.stock) or bool(product.has_loop)


@dataclass
class SkuView:
    sku: SKU
    in_stock: bool
    tiers: list[WholesalePrice] = field(default_factory=list)


@dataclass
class ProductView:
    product: Product
    skus: list[SkuView]
    description_html: SafeString

    @property
    def in_stock(self) -> bool:
        return any(s.in_stock for s in self.skus)

    def sku(self, sku_id) -> SkuView | None:
        for view in self.skus:
            if str(view.sku.pk) == str(sku_id):
                return view
        return None

    @property
    def default_sku(self) -> SkuView | None:
        return next((s for s in self.skus if s.in_stock), self.skus[0] if self.skus else None)


def sanitize_description(html: str) -> SafeString:
    """Sanitised again here (defence in depth), so the template may render it as HTML."""
    cleaned = nh3.clean(html or "", tags=DESCRIPTION_TAGS, attributes=DESCRIPTION_ATTRIBUTES,
                        url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")
    return mark_safe(cleaned)  # noqa: S308 - nh3 output with an allow-list


def product_detail(product_id: int) -> ProductView | None:
    """A visible product with its active SKUs, stock and wholesale tiers; None if hidden."""
    product = Product.objects.filter(pk=product_id, is_visible=True).select_related("category").first()
    if product is None:
        return None
    skus = list(SKU.objects.filter(product=product, is_active=True).prefetch_related("wholesale_prices"))
    if not skus:
        return None
    loop_skus = set()
    if product.type == Product.Type.CARD_KEY:
        loop_skus = set(CardKey.objects.filter(sku__in=skus, is_loop=True, status=CardKey.Status.AVAILABLE)
                        .values_list("sku_id", flat=True).distinct())
    views = []
    for sku in skus:
        in_stock = product.type != Product.Type.CARD_KEY or sku.available_count > 0 or sku.pk in loop_skus
        views.append(SkuView(sku, in_stock, list(sku.wholesale_prices.all())))
    return ProductView(product, views, sanitize_description(product.description))


# --- orders the buyer owns -------------------------------------------------------------

def session_order_tokens(session) -> dict[str, str]:
    return session.get(SESSION_ORDERS_KEY) or {}


def session_grant_order(session, order: Order) -> None:
    """This browser may see ``order`` from now on (the most recent orders are kept)."""
    tokens = dict(session_order_tokens(session))
    tokens.pop(order.number, None)
    tokens[order.number] = order.access_token
    while len(tokens) > SESSION_ORDERS_MAX:
        tokens.pop(next(iter(tokens)))
    session[SESSION_ORDERS_KEY] = tokens


def buyer_owns(order: Order, *, session, customer=None, token: str = "") -> bool:
    if customer is not None and order.customer_id == customer.pk:
        return True
    remembered = session_order_tokens(session).get(order.number, "")
    for candidate in (remembered, token or ""):
        if candidate and secrets.compare_digest(str(candidate), order.access_token):
            return True
    return False


def order_for_buyer(number: str, *, session, customer=None, token: str = "") -> Order | None:
    """The order if this browser owns it, else None — the same answer whether or not
    the number exists."""
    number = (number or "").strip()
    if not number or len(number) > 24:
        return None
    order = Order.objects.filter(number=number).first()
    if order is None or not buyer_owns(order, session=session, customer=customer, token=token):
        return None
    return order


def order_status_for_buyer(number: str, *, session, customer_id=None) -> str | None:
    """Just the status, for the order page's polling (one small query)."""
    row = Order.objects.filter(number=number).values("status", "access_token", "customer_id").first()
    if row is None:
        return None
    owned = customer_id is not None and row["customer_id"] == customer_id
    remembered = session_order_tokens(session).get(number, "")
    if not owned and not (remembered and secrets.compare_digest(str(remembered), row["access_token"])):
        return None
    return row["status"]


def customer_orders(customer, limit: int = 50) -> list[Order]:
    return list(Order.objects.filter(customer=customer).prefetch_related("lines").order_by("-id")[:limit])


def customer_wallet_entries(customer, limit: int = 50):
    return list(customer.wallet_entries.order_by("-id")[:limit])
