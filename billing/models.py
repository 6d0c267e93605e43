"""Platform billing (public schema): plans, subscriptions, metered usage, invoices.

Money is integer minor units; rates are integer basis points (1 bp = 0.01 %).
"""
from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

LIMIT_FIELDS = ("max_products", "max_staff_seats", "max_custom_domains", "max_monthly_orders")


class Plan(models.Model):
    """What a shop pays and what it may do. A limit of NULL means unlimited."""

    code = models.SlugField(max_length=30, unique=True)
    name = models.CharField(max_length=60)
    monthly_fee = models.BigIntegerField(help_text="Minor units per month (1000 = 10.00).")
    currency = models.CharField(max_length=3, default="CNY")
    commission_bp = models.PositiveIntegerField(default=0, help_text="Commission on GMV in basis points (150 = 1.5 %).")
    max_products = models.PositiveIntegerField(null=True, blank=True)
    max_staff_seats = models.PositiveIntegerField(null=True, blank=True, help_text="Memberships, the owner included.")
    max_custom_domains = models.PositiveIntegerField(null=True, blank=True)
    max_monthly_orders = models.PositiveIntegerField(null=True, blank=True)
    #: strings such as "plugins.payment" (a plugin kind) or "plugin.sandbox" (one plugin)
    features = models.JSONField(default=list, blank=True)
    trial_days = models.PositiveIntegerField(default=14)
    sort_order = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True, help_text="Inactive plans are not offered; shops on them keep them.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sort_order", "monthly_fee", "code"]
        constraints = [
            models.CheckConstraint(name="plan_fee_not_negative", condition=Q(monthly_fee__gte=0)),
            models.CheckConstraint(name="plan_commission_bp_range", condition=Q(commission_bp__lte=10000)),
            models.CheckConstraint(name="plan_currency_iso", condition=Q(currency__regex=r"^[A-Z]{3}$")),
        ]

    def __str__(self):
        return self.name

    def limit(self, name: str) -> int | None:
        return getattr(self, f"max_{name}")


class Subscription(models.Model):
    """One per shop. Status changes only through billing.services.subscription_transition."""

    class Status(models.TextChoices):
        TRIAL = "trial", "trial"
        ACTIVE = "active", "active"
        PAST_DUE = "past_due", "past due"
        SUSPENDED = "suspended", "suspended"
        CANCELLED = "cancelled", "cancelled"

    shop = models.OneToOneField("tenants.Shop", on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRIAL)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    #: granted by the platform (demo, partner shops): never invoiced
    complimentary = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(name="subscription_status_valid",
                                   condition=Q(status__in=["trial", "active", "past_due", "suspended", "cancelled"])),
            models.CheckConstraint(name="subscription_trial_has_end",
                                   condition=~Q(status="trial") | Q(trial_ends_at__isnull=False)),
        ]

    def __str__(self):
        return f"{self.shop} on {self.plan} ({self.status})"


class SubscriptionEvent(models.Model):
    """Every state change and plan change of a subscription, in order."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10, blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]


class PlanSpan(models.Model):
    """The days a subscription spent on one plan: [start, end) in the billing time zone.
    Monthly fees are prorated from these; trial spans are not charged."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="spans")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    start = models.DateField()
    end = models.DateField(null=True, blank=True)
    charged = models.BooleanField(default=True)

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.CheckConstraint(name="planspan_end_after_start", condition=Q(end__isnull=True) | Q(end__gte=F("start"))),
            models.UniqueConstraint(fields=["subscription"], condition=Q(end__isnull=True), name="one_open_span"),
        ]


class DailyUsage(models.Model):
    """GMV of one shop on one day (paid purchase orders minus refunds), recomputed by
    an idempotent task: a re-run overwrites the row with the same figures."""

    shop = models.ForeignKey("tenants.Shop", on_delete=models.CASCADE, related_name="daily_usage")
    day = models.DateField()
    currency = models.CharField(max_length=3)
    paid_amount = models.BigIntegerField(default=0)
    refunded_amount = models.BigIntegerField(default=0)
    gmv = models.BigIntegerField(default=0)
    paid_orders = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["shop", "day"], name="one_usage_row_per_shop_day"),
            models.CheckConstraint(name="usage_gmv_is_paid_minus_refunded",
                                   condition=Q(gmv=F("paid_amount") - F("refunded_amount"))),
            models.CheckConstraint(name="usage_amounts_not_negative",
                                   condition=Q(paid_amount__gte=0) & Q(refunded_amount__gte=0)),
        ]


class InvoiceCounter(models.Model):
    """The last number used in a series and year; locked FOR UPDATE while issuing so
    numbers are consecutive (a rolled-back issue rolls the counter back too)."""

    series = models.CharField(max_length=4)
    year = models.PositiveIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "year"], name="one_counter_per_series_year")]


class Invoice(models.Model):
    """Issued at once and immutable afterwards (a trigger refuses changes to its figures
    and lines); corrected only by a credit note. Collection state may change."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", "invoice"
        CREDIT_NOTE = "credit_note", "credit note"

    class Status(models.TextChoices):
        OPEN = "open", "open"
        PAID = "paid", "paid"
        CREDITED = "credited", "credited"  # cancelled by a credit note

    shop = models.ForeignKey("tenants.Shop", on_delete=models.PROTECT, related_name="invoices")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    number = models.CharField(max_length=20, unique=True)
    year = models.PositiveIntegerField()
    sequence = models.PositiveIntegerField()
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)  # exclusive
    currency = models.CharField(max_length=3)
    subtotal = models.BigIntegerField()
    tax_bp = models.PositiveIntegerField(default=0)
    tax = models.BigIntegerField(default=0)
    total = models.BigIntegerField()
    line_count = models.PositiveIntegerField(default=0)  # fixed at issue: no line can be added later
    credits = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_notes")
    bill_to = models.JSONField(default=dict, blank=True)  # shop name, slug, owner e-mail at issue time
    issued_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    # --- collection state (may change after issue) ---
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    paid_at = models.DateTimeField(null=True, blank=True)
    pdf_key = models.CharField(max_length=300, blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "year", "sequence"], name="invoice_sequence_unique"),
            # one monthly invoice per shop and period: re-running the monthly job finds it
            models.UniqueConstraint(fields=["shop", "period_start"], condition=Q(kind="invoice"),
                                    name="one_invoice_per_shop_period"),
            models.CheckConstraint(name="invoice_total_is_subtotal_plus_tax", condition=Q(total=F("subtotal") + F("tax"))),
            models.CheckConstraint(name="invoice_amounts_sign",
                                   condition=(Q(kind="invoice") & Q(subtotal__gte=0) & Q(tax__gte=0))
                                   | (Q(kind="credit_note") & Q(subtotal__lte=0) & Q(tax__lte=0))),
            models.CheckConstraint(name="invoice_credit_note_points_to_invoice",
                                   condition=Q(kind="invoice", credits__isnull=True)
                                   | Q(kind="credit_note", credits__isnull=False)),
            models.CheckConstraint(name="invoice_paid_has_time", condition=~Q(status="paid") | Q(paid_at__isnull=False)),
        ]

    def __str__(self):
        return self.number


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=20)  # subscription | commission | credit
    description = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(default=1)
    amount = models.BigIntegerField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position_unique")]


class CollectionAttempt(models.Model):
    """One try to collect an invoice through the platform's payment adapter."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="attempts")
    provider = models.CharField(max_length=40)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    external_id = models.CharField(max_length=120, blank=True)
    pay_url = models.CharField(max_length=500, blank=True)
    message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(name="attempt_amount_positive", condition=Q(amount__gt=0)),
            # one success per invoice: a double click on "pay" never charges twice
            models.UniqueConstraint(fields=["invoice"], condition=Q(status="succeeded"), name="one_paid_attempt"),
        ]


class BillingCustomer(models.Model):
    """A shop as a customer of the platform's payment provider (a Stripe Customer), and
    the card it saved when it last paid on the provider's page: later invoices are
    charged to that card without the owner. Holds ids only, never card numbers."""

    shop = models.ForeignKey("tenants.Shop", on_delete=models.CASCADE, related_name="billing_customers")
    provider = models.CharField(max_length=40)
    customer_id = models.CharField(max_length=120)
    payment_method_id = models.CharField(max_length=120, blank=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_saved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shop", "provider"], name="one_billing_customer_per_shop_provider"),
            models.UniqueConstraint(fields=["provider", "customer_id"], name="billing_customer_id_unique"),
            models.CheckConstraint(name="billing_customer_card_complete",
                                   condition=Q(payment_method_id="") | Q(card_saved_at__isnull=False)),
        ]

    def __str__(self):
        return f"{self.shop} at {self.provider}"
