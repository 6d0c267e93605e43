"""Payments, refunds and the webhook inbox (idempotent on the gateway's event id)."""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Payment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        DUPLICATE = "duplicate"  # money taken for an order already paid: refunded

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payments")
    provider = models.CharField(max_length=40)
    #: the provider's merchant account that took the payment (plugins.PluginAccount.key);
    #: webhooks, refunds, polls and reconciliation use that account's credentials
    account = models.CharField(max_length=40, default="main")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    external_id = models.CharField(max_length=120, null=True, blank=True)
    refunded_amount = models.BigIntegerField(default=0)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    # the method's fee on this payment (PaymentMethodFee, docs/decisions/0025): included in
    # ``amount`` when the buyer pays it, only recorded when the shop bears it
    fee = models.BigIntegerField(default=0)
    fee_paid_by_buyer = models.BooleanField(default=False)

    class Meta:
        constraints = [
            # two merchant accounts of one gateway may hand out the same ids
            models.UniqueConstraint(fields=["provider", "account", "external_id"], name="payment_external_id_unique"),
            # a buyer-paid fee is part of the amount and never all of it
            models.CheckConstraint(name="payment_fee_valid",
                                   condition=Q(fee__gte=0) & (Q(fee_paid_by_buyer=False)
                                                             | Q(amount__gt=models.F("fee")))),
            models.CheckConstraint(name="payment_amounts_valid",
                                   condition=Q(amount__gt=0) & Q(refunded_amount__gte=0)
                                   & Q(refunded_amount__lte=models.F("amount"))),
            # one successful payment per order: a second one is refunded, never kept
            models.UniqueConstraint(fields=["order"], condition=Q(status="succeeded"), name="one_success_per_order"),
        ]


    @property
    def buyer_fee(self) -> int:
        """The part of ``amount`` that is the payment fee the buyer paid (0 if the shop bore it)."""
        return self.fee if self.fee_paid_by_buyer else 0


class PaymentMethodFee(models.Model):
    """A shop's fee for one payment method: ``fixed`` minor units + ``basis_points`` of the
    order total, borne by the shop or passed on to the buyer (docs/decisions/0025)."""

    MAX_BASIS_POINTS = 2000  # 20 %: more is a typo, not a gateway's price
    MAX_FIXED = 100_000  # 1,000.00 in a two-decimal currency

    provider = models.CharField(max_length=40, unique=True)
    fixed = models.BigIntegerField(default=0)
    basis_points = models.IntegerField(default=0)
    passed_to_buyer = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=254, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="payment_method_fee_fixed_range",
                                   condition=Q(fixed__gte=0) & Q(fixed__lte=100_000)),
            models.CheckConstraint(name="payment_method_fee_bp_range",
                                   condition=Q(basis_points__gte=0) & Q(basis_points__lte=2000)),
        ]

    def __str__(self) -> str:
        return f"{self.provider}: {self.fixed} + {self.basis_points} bp"


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    external_id = models.CharField(max_length=120, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    created_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(name="refund_amount_positive", condition=Q(amount__gt=0))]


class WebhookEvent(models.Model):
    """Inbox: every verified gateway event once, keyed by the gateway's own id."""

    provider = models.CharField(max_length=40)
    #: the merchant account whose secret verified the event (event ids are per account)
    account = models.CharField(max_length=40, default="main")
    event_id = models.CharField(max_length=120)
    kind = models.CharField(max_length=60)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.SET_NULL)
    payload = models.JSONField(default=dict)
    result = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "account", "event_id"], name="webhook_event_once")]


class ReconciliationRun(models.Model):
    """One day of one gateway compared with our records (对账). Re-running a day updates
    the same run: open findings are recomputed, fixed and dismissed ones stay."""

    class Status(models.TextChoices):
        MATCHED = "matched"
        MISMATCHES = "mismatches"
        FAILED = "failed"  # the gateway's report could not be fetched

    provider = models.CharField(max_length=40)
    day = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices)
    message = models.CharField(max_length=300, blank=True)
    gateway_payments = models.IntegerField(default=0)
    gateway_refunds = models.IntegerField(default=0)
    gateway_net = models.JSONField(default=dict, blank=True)  # {"CNY": minor units paid minus refunded}
    matched = models.IntegerField(default=0)
    open_items = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # failed runs: how many tries in a row failed, and when the next automatic one is due
    # (None: no automatic retry — the cause needs the shop, or the tries are used up)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "day"], name="one_reconciliation_per_day")]
        indexes = [models.Index(fields=["retry_at"], name="reconciliation_retry_due",
                                condition=models.Q(retry_at__isnull=False))]
        ordering = ["-day", "provider"]


class ReconciliationItem(models.Model):
    class Kind(models.TextChoices):
        PAID_NOT_RECORDED = "paid_not_recorded", "Paid at the gateway, not in Kameng"
        AMOUNT_DIFFERS = "amount_differs", "Amount or currency differs"
        NOT_AT_GATEWAY = "not_at_gateway", "Paid in Kameng, unknown to the gateway"
        REFUND_NOT_RECORDED = "refund_not_recorded", "Refunded at the gateway, not in Kameng"

    class Status(models.TextChoices):
        OPEN = "open"
        FIXED = "fixed"
        DISMISSED = "dismissed"

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    external_id = models.CharField(max_length=120)  # the gateway's payment or refund id
    payment_external_id = models.CharField(max_length=120, blank=True)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.SET_NULL)
    gateway_amount = models.BigIntegerField(null=True, blank=True)
    kameng_amount = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolved_by = models.CharField(max_length=254, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "kind", "external_id"], name="one_finding_per_item")]
        ordering = ["id"]

    @property
    def fixable(self) -> bool:
        """Kinds Kameng can put right by itself (the others need a person's judgement)."""
        return self.status == self.Status.OPEN and (
            self.kind == self.Kind.REFUND_NOT_RECORDED
            or (self.kind == self.Kind.PAID_NOT_RECORDED and self.payment_id is not None))
