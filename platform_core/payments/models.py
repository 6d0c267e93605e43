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
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    external_id = models.CharField(max_length=120, null=True, blank=True)
    refunded_amount = models.BigIntegerField(default=0)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "external_id"], name="payment_external_id_unique"),
            models.CheckConstraint(name="payment_amounts_valid",
                                   condition=Q(amount__gt=0) & Q(refunded_amount__gte=0)
                                   & Q(refunded_amount__lte=models.F("amount"))),
            # one successful payment per order: a second one is refunded, never kept
            models.UniqueConstraint(fields=["order"], condition=Q(status="succeeded"), name="one_success_per_order"),
        ]


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
    event_id = models.CharField(max_length=120)
    kind = models.CharField(max_length=60)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.SET_NULL)
    payload = models.JSONField(default=dict)
    result = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_once")]
