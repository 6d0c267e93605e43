"""Serializers of the shop API's commerce endpoints: catalog, stock, orders, tickets,
customers. Input serializers check shapes, types and ranges; the services check the
business rules. Money is always an integer in minor units, in fields named ``*_minor``."""
from __future__ import annotations

import re

from django.db import connection
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from platform_core.catalog.models import SKU, Category, Product
from platform_core.catalog.services import MAX_ORDER_QUANTITY, MAX_PRICE_MINOR, MAX_SORT_ORDER, MAX_THRESHOLD
from platform_core.orders.models import Order, Ticket
from platform_core.orders.services import MAX_LINES, MAX_QUANTITY

MAX_ID = 2**63 - 1  # larger ids would make PostgreSQL fail instead of "not found"
_DIGITS = re.compile(r"^-?[0-9]{1,20}$")


class StrictIntegerField(serializers.IntegerField):
    """A whole number: a JSON integer, or digits in a form post. Never a float such as
    12.5 or 12.0, never true/false."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or isinstance(data, float):
            self.fail("invalid")
        if isinstance(data, str):
            if not _DIGITS.match(data.strip()):
                self.fail("invalid")
            data = int(data.strip())
        if not isinstance(data, int):
            self.fail("invalid")
        return data


def minor_field(**kwargs) -> StrictIntegerField:
    kwargs.setdefault("min_value", 0)
    kwargs.setdefault("max_value", MAX_PRICE_MINOR)
    kwargs.setdefault("help_text", "Integer amount in minor units of the shop's currency (e.g. fen, cents).")
    return StrictIntegerField(**kwargs)


def id_field(**kwargs) -> StrictIntegerField:
    return StrictIntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def shop_currency() -> str:
    return getattr(getattr(connection, "tenant", None), "currency", None) or "CNY"


# --- catalog -------------------------------------------------------------------------

class CategoryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    parent_id = serializers.IntegerField(allow_null=True)
    sort_order = serializers.IntegerField()
    is_visible = serializers.BooleanField()
    product_count = serializers.IntegerField(required=False, help_text="Products directly in this category.")


class CategoryInput(serializers.Serializer):
    name = serializers.CharField(max_length=60)
    parent_id = serializers.PrimaryKeyRelatedField(queryset=Category.objects.all(), allow_null=True, required=False,
                                                   help_text="A top-level category of this shop; null for top level.")
    sort_order = StrictIntegerField(min_value=-MAX_SORT_ORDER, max_value=MAX_SORT_ORDER, required=False)
    is_visible = serializers.BooleanField(required=False)

    def to_service(self) -> dict:
        values = dict(self.validated_data)
        if "parent_id" in values:
            values["parent"] = values.pop("parent_id")
        return values


class WholesalePriceSerializer(serializers.Serializer):
    min_quantity = StrictIntegerField(min_value=2, max_value=MAX_ORDER_QUANTITY,
                                      help_text="From this many units on…")
    unit_price_minor = minor_field(source="unit_price", help_text="…each unit costs this (minor units).")


class StockOutput(serializers.Serializer):
    sku_id = serializers.IntegerField()
    available = serializers.IntegerField()
    reserved = serializers.IntegerField(help_text="Held for unpaid orders until their reservation runs out.")
    sold = serializers.IntegerField()


class SKUOutput(serializers.Serializer):
    id = serializers.IntegerField()
    product_id = serializers.IntegerField()
    name = serializers.CharField()
    price_minor = serializers.IntegerField(source="price", help_text="Minor units.")
    currency = serializers.SerializerMethodField()
    is_active = serializers.BooleanField()
    sort_order = serializers.IntegerField()
    issue_order = serializers.CharField()
    stock = serializers.SerializerMethodField()
    wholesale_prices = WholesalePriceSerializer(many=True)

    def get_currency(self, sku) -> str:
        return shop_currency()

    @extend_schema_field(StockOutput)
    def get_stock(self, sku):
        return {"sku_id": sku.pk, "available": sku.available_count, "reserved": sku.reserved_count,
                "sold": sku.sold_count}


class SKUInput(serializers.Serializer):
    name = serializers.CharField(max_length=60, required=False, allow_blank=True)
    price_minor = minor_field()
    is_active = serializers.BooleanField(required=False)
    sort_order = StrictIntegerField(min_value=-MAX_SORT_ORDER, max_value=MAX_SORT_ORDER, required=False)
    issue_order = serializers.ChoiceField(choices=SKU.IssueOrder.values, required=False)
    wholesale_prices = WholesalePriceSerializer(many=True, required=False, max_length=50,
                                                help_text="Replaces every wholesale price of the SKU.")


def sku_service_values(validated: dict) -> tuple[dict, list | None]:
    """Validated SKU input -> (service fields, wholesale tiers or None when not given)."""
    values = dict(validated)
    tiers = values.pop("wholesale_prices", None)
    if "price_minor" in values:
        values["price"] = values.pop("price_minor")
    return values, tiers


class ProductOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.CharField()
    category_id = serializers.IntegerField(allow_null=True)
    description = serializers.CharField(help_text="Sanitised HTML.")
    image_url = serializers.SerializerMethodField()
    is_visible = serializers.BooleanField()
    member_only = serializers.BooleanField()
    sort_order = serializers.IntegerField()
    min_quantity = serializers.IntegerField()
    max_quantity = serializers.IntegerField()
    account_pattern = serializers.CharField()
    account_label = serializers.CharField()
    low_stock_threshold = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    skus = SKUOutput(many=True)

    def get_image_url(self, product) -> str | None:
        return product.image.url if product.image else None


class ProductInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    type = serializers.ChoiceField(choices=Product.Type.values, required=False)
    category_id = serializers.PrimaryKeyRelatedField(queryset=Category.objects.all(), allow_null=True,
                                                     required=False, help_text="A category of this shop.")
    description = serializers.CharField(allow_blank=True, required=False, max_length=100_000,
                                        help_text="HTML; scripts, styles and event handlers are removed.")
    is_visible = serializers.BooleanField(required=False)
    member_only = serializers.BooleanField(required=False)
    sort_order = StrictIntegerField(min_value=-MAX_SORT_ORDER, max_value=MAX_SORT_ORDER, required=False)
    min_quantity = StrictIntegerField(min_value=1, max_value=MAX_ORDER_QUANTITY, required=False)
    max_quantity = StrictIntegerField(min_value=1, max_value=MAX_ORDER_QUANTITY, required=False)
    account_pattern = serializers.CharField(allow_blank=True, required=False, max_length=200)
    account_label = serializers.CharField(allow_blank=True, required=False, max_length=60)
    low_stock_threshold = StrictIntegerField(min_value=0, max_value=MAX_THRESHOLD, required=False)
    skus = SKUInput(many=True, required=False, max_length=50, help_text="Only when creating: the product's SKUs.")

    def to_service(self) -> dict:
        values = dict(self.validated_data)
        if "category_id" in values:
            values["category"] = values.pop("category_id")
        return values


# --- stock import --------------------------------------------------------------------

class KeysImportJsonInput(serializers.Serializer):
    keys = serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False,
                                                             max_length=2000),
                                 allow_empty=False, max_length=100_000,
                                 help_text="One key per item (or “card<separator>password”).")
    loop = serializers.BooleanField(default=False, help_text="Reusable key sold to every buyer.")
    separator = serializers.CharField(required=False, allow_blank=True, max_length=10,
                                      help_text="Reads card/password pairs: space, comma, dashes, pipe, tab, "
                                                "semicolon or a literal separator.")


class KeysImportFileInput(serializers.Serializer):
    file = serializers.FileField(help_text="TXT, CSV or XLSX.")
    format = serializers.ChoiceField(choices=["txt", "csv", "xlsx"], required=False,
                                     help_text="Guessed from the file name when left out.")
    separator = serializers.CharField(required=False, allow_blank=True, max_length=10)
    pairs = serializers.BooleanField(default=False, help_text="CSV/XLSX: column B holds the password.")
    loop = serializers.BooleanField(default=False)


class ImportLineError(serializers.Serializer):
    line = serializers.IntegerField()
    error = serializers.CharField()


class KeysImportOutput(serializers.Serializer):
    batch_id = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    imported = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    invalid = serializers.IntegerField()
    errors = ImportLineError(many=True, help_text="Invalid lines by number (the first 200).")
    message = serializers.CharField()


# --- orders --------------------------------------------------------------------------

class OrderLineOutput(serializers.Serializer):
    id = serializers.IntegerField()
    sku_id = serializers.IntegerField()
    title = serializers.CharField()
    product_type = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price_minor = serializers.IntegerField(source="unit_price")
    total_minor = serializers.IntegerField(source="total")
    account = serializers.CharField()
    delivered_quantity = serializers.IntegerField()


class OrderEventOutput(serializers.Serializer):
    kind = serializers.CharField()
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    message = serializers.CharField()
    actor = serializers.CharField()
    data = serializers.JSONField()
    created_at = serializers.DateTimeField()


class RefundOutput(serializers.Serializer):
    id = serializers.IntegerField()
    amount_minor = serializers.IntegerField(source="amount")
    status = serializers.CharField()
    reason = serializers.CharField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()


class PaymentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    provider = serializers.CharField()
    amount_minor = serializers.IntegerField(source="amount")
    currency = serializers.CharField()
    status = serializers.CharField()
    refunded_minor = serializers.IntegerField(source="refunded_amount")
    fee_minor = serializers.IntegerField(source="fee", help_text="The payment method's fee on this payment.")
    fee_paid_by_buyer = serializers.BooleanField(help_text="True when fee_minor is included in amount_minor.")
    external_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    succeeded_at = serializers.DateTimeField(allow_null=True)
    refunds = RefundOutput(many=True)  # the manager, not .all: DRF inspects a method's signature per row


class OrderOutput(serializers.Serializer):
    number = serializers.CharField()
    kind = serializers.CharField()
    # statuses are plain strings in the schema: two enums both named "status" collide in
    # drf-spectacular (a warning that fails `check --deploy`) unless settings name them
    status = serializers.CharField(help_text="One of: " + ", ".join(Order.Status.values))
    contact = serializers.CharField()
    customer_id = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField()
    subtotal_minor = serializers.IntegerField(source="subtotal")
    discount_minor = serializers.IntegerField(source="discount")
    total_minor = serializers.IntegerField(source="total")
    refunded_minor = serializers.IntegerField(source="refunded_amount")
    payment_method = serializers.CharField()
    created_at = serializers.DateTimeField()
    reserved_until = serializers.DateTimeField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    lines = OrderLineOutput(many=True)


class OrderDetailOutput(OrderOutput):
    events = OrderEventOutput(many=True)
    payments = PaymentOutput(many=True)
    ticket_ids = serializers.SerializerMethodField()

    def get_ticket_ids(self, order) -> list[int]:
        if "tickets" in getattr(order, "_prefetched_objects_cache", {}):  # a new order: none yet
            return sorted(ticket.pk for ticket in order.tickets.all())
        return list(order.tickets.order_by("id").values_list("id", flat=True))


class OrderLineInput(serializers.Serializer):
    sku_id = id_field()
    quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)
    account = serializers.CharField(max_length=120, required=False, allow_blank=True, default="",
                                    help_text="Top-up products: the account or phone number to top up.")


class PaymentStartInput(serializers.Serializer):
    provider = serializers.SlugField(help_text="Slug of an enabled payment plugin, e.g. sandbox.")
    return_url = serializers.URLField(required=False, help_text="Where the buyer lands after paying "
                                                                "(default: the order page).")


class PaymentStartOutput(serializers.Serializer):
    payment_id = serializers.IntegerField()
    provider = serializers.CharField()
    amount = serializers.IntegerField(help_text="What the buyer pays, minor units: the order total plus the fee "
                                                "when the shop passes it on.")
    order_total = serializers.IntegerField(help_text="Minor units.")
    fee = serializers.IntegerField(help_text="The payment method's fee on this payment, minor units (recorded even "
                                             "when the shop bears it).")
    fee_passed_to_buyer = serializers.BooleanField(help_text="True when ``fee`` is included in ``amount``.")
    currency = serializers.CharField()
    action = serializers.CharField(help_text="redirect | qr | instant")
    url = serializers.CharField(allow_blank=True)
    qr_text = serializers.CharField(allow_blank=True)
    external_id = serializers.CharField(allow_blank=True, help_text="The gateway's id of this payment.")


class OrderPlacedOutput(OrderDetailOutput):
    payment = PaymentStartOutput(required=False, allow_null=True,
                                 help_text="Only when the request asked to start paying and it started.")
    payment_error = serializers.DictField(required=False, allow_null=True,
                                         help_text="Only when the request asked to start paying and it could "
                                                   "not: detail, code, retryable, status.")


class OrderCreateInput(serializers.Serializer):
    lines = OrderLineInput(many=True, allow_empty=False, max_length=MAX_LINES)
    contact = serializers.CharField(max_length=254, help_text="The buyer's e-mail address or phone number.")
    query_password = serializers.CharField(min_length=4, max_length=128, write_only=True,
                                           help_text="Lets the buyer look the order up without an account.")
    payment = PaymentStartInput(required=False, help_text="Start paying at once (one request instead of two): "
                                                          "the answer then carries `payment` (or `payment_error`).")


class DeliveredSecretOutput(serializers.Serializer):
    delivered_key_id = serializers.IntegerField(allow_null=True, help_text="Null for a manual delivery note.")
    line_title = serializers.CharField()
    secret = serializers.CharField(help_text="Plaintext key or delivery note.")
    replaced = serializers.BooleanField(help_text="Replaced by a reissued key; no longer valid.")


class OrderKeysOutput(serializers.Serializer):
    number = serializers.CharField()
    items = DeliveredSecretOutput(many=True)


class RefundInput(serializers.Serializer):
    amount_minor = minor_field(min_value=1)
    reason = serializers.CharField(max_length=300, allow_blank=True, default="")
    ticket_id = id_field(required=False, help_text="The after-sales ticket this refund answers (optional).")


class DeliverInput(serializers.Serializer):
    note = serializers.CharField(max_length=4000, help_text="What the buyer receives; stored encrypted.")


# --- tickets -------------------------------------------------------------------------

class TicketMessageOutput(serializers.Serializer):
    id = serializers.IntegerField()
    from_staff = serializers.BooleanField()
    author = serializers.CharField()
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class MaskedKeyOutput(serializers.Serializer):
    delivered_key_id = serializers.IntegerField()
    line_title = serializers.CharField()
    masked = serializers.CharField(help_text="First and last characters only.")
    replaced = serializers.BooleanField()


class TicketOutput(serializers.Serializer):
    id = serializers.IntegerField()
    order_number = serializers.CharField(source="order.number")
    reason = serializers.ChoiceField(choices=Ticket.Reason.choices)
    status = serializers.CharField(help_text="One of: " + ", ".join(Ticket.Status.values))
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class TicketDetailOutput(TicketOutput):
    messages = TicketMessageOutput(many=True)
    delivered_keys = MaskedKeyOutput(many=True, help_text="The order's keys, masked; pick one to reissue.")


class TicketReplyInput(serializers.Serializer):
    body = serializers.CharField(max_length=4000)


class TicketReissueInput(serializers.Serializer):
    delivered_key_id = id_field(help_text="One of the order's delivered keys (see the ticket's delivered_keys).")


# --- customers -----------------------------------------------------------------------

class WalletEntryOutput(serializers.Serializer):
    kind = serializers.CharField()
    amount_minor = serializers.IntegerField(source="amount")
    balance_after_minor = serializers.IntegerField(source="balance_after")
    order_number = serializers.CharField(source="order.number", allow_null=True, default=None)
    reference = serializers.CharField()
    created_at = serializers.DateTimeField()


class CustomerOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    tier = serializers.CharField()
    is_active = serializers.BooleanField()
    wallet_balance_minor = serializers.IntegerField(source="wallet_balance")
    order_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    last_login = serializers.DateTimeField(allow_null=True)


class CustomerDetailOutput(CustomerOutput):
    wallet_entries = WalletEntryOutput(many=True, source="recent_wallet_entries",
                                       help_text="The newest 100 wallet movements, newest first.")
