"""Orders with an explicit state machine and an event per transition; after-sales tickets."""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING_PAYMENT = "pending_payment", _("Awaiting payment")
        PAID = "paid", _("Paid")
        AWAITING_STOCK = "awaiting_stock", _("Paid, awaiting stock")
        PROCESSING = "processing", _("Processing")
        DELIVERED = "delivered", _("Delivered")
        COMPLETED = "completed", _("Completed")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")
        REFUNDED = "refunded", _("Refunded")

    class Kind(models.TextChoices):
        PURCHASE = "purchase", _("Purchase")
        WALLET_TOPUP = "wallet_topup", _("Wallet top-up")

    number = models.CharField(max_length=24, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.PURCHASE)
    customer = models.ForeignKey("customers.Customer", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="orders")
    contact = models.CharField(max_length=254, help_text="E-mail or phone given at checkout.")
    contact_email = models.EmailField(blank=True)
    query_password = models.CharField(max_length=200, blank=True)  # hashed; for order lookup
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING_PAYMENT)
    currency = models.CharField(max_length=3, default="CNY")
    subtotal = models.BigIntegerField()
    discount = models.BigIntegerField(default=0)
    total = models.BigIntegerField()
    refunded_amount = models.BigIntegerField(default=0)
    payment_method = models.CharField(max_length=40, blank=True)
    idempotency_key = models.CharField(max_length=80, null=True, blank=True, unique=True)
    access_token = models.CharField(max_length=43, unique=True)  # proves ownership to the buyer's browser
    ip = models.GenericIPAddressField(null=True, blank=True)
    language = models.CharField(max_length=8, default="zh-hans")
    reserved_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(name="order_amounts_valid",
                                   condition=Q(subtotal__gte=0) & Q(discount__gte=0) & Q(total__gte=0)
                                   & Q(refunded_amount__gte=0) & Q(refunded_amount__lte=models.F("total"))),
        ]
        indexes = [
            models.Index(fields=["contact", "status"], name="order_contact_status"),
            # the plan's monthly order limit counts this month's purchases on every checkout
            models.Index(fields=["created_at"], condition=Q(kind="purchase"), name="order_purchases_by_created"),
            models.Index(fields=["ip", "status"], name="order_ip_status"),
            models.Index(fields=["status", "reserved_until"], name="order_pending_expiry",
                         condition=Q(status="pending_payment")),
        ]

    def __str__(self):
        return self.number


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey("catalog.SKU", on_delete=models.PROTECT, related_name="order_lines")
    product_type = models.CharField(max_length=10)
    title = models.CharField(max_length=200)  # product + SKU name at the time of sale
    quantity = models.PositiveIntegerField()
    unit_price = models.BigIntegerField()
    total = models.BigIntegerField()
    account = models.CharField(max_length=120, blank=True, help_text="Top-up target entered by the buyer.")
    delivered_quantity = models.PositiveIntegerField(default=0)
    delivery_note = models.TextField(blank=True, help_text="Manual delivery content, encrypted.")

    class Meta:
        constraints = [
            models.CheckConstraint(name="line_quantity_positive", condition=Q(quantity__gte=1)),
            models.CheckConstraint(name="line_delivered_le_quantity",
                                   condition=Q(delivered_quantity__lte=models.F("quantity"))),
        ]


class OrderEvent(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    kind = models.CharField(max_length=40)
    message = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]


class Ticket(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ANSWERED = "answered", _("Answered")
        CLOSED = "closed", _("Closed")

    class Reason(models.TextChoices):
        INVALID_KEY = "invalid_key", _("The key does not work")
        NOT_RECEIVED = "not_received", _("I did not receive it")
        OTHER = "other", _("Something else")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="tickets")
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.INVALID_KEY)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]


class TicketMessage(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    from_staff = models.BooleanField(default=False)
    author = models.CharField(max_length=254, blank=True)
    body = models.TextField(max_length=4000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]


class OrderSettings(models.Model):
    """Per-shop checkout rules (one row)."""

    reservation_minutes = models.PositiveIntegerField(default=15)
    max_open_orders_per_contact = models.PositiveIntegerField(default=3)
    max_open_orders_per_ip = models.PositiveIntegerField(default=10)
    awaiting_stock_refund_hours = models.PositiveIntegerField(default=24)

    @classmethod
    def current(cls) -> "OrderSettings":
        from platform_core.db.rows import select_row

        return select_row(cls, "TRUE", [], suffix="ORDER BY id LIMIT 1") or cls()


class PendingOrderEmail(models.Model):
    """An order's e-mail with its keys, still to send. Written in the transaction that
    delivered, so a delivery committed is an e-mail that goes out, broker up or not;
    sent and removed by ``order_emails_send_pending`` (decision 0044). Not unique per
    order: a row queued while an earlier one is being sent is the next drain's."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="+")
    queued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["queued_at"], name="pending_email_by_age")]
