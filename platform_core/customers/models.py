"""A shop's own buyers and members (not platform accounts), and their wallets."""
from __future__ import annotations

from django.contrib.auth.hashers import check_password, make_password
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Customer(models.Model):
    email = models.EmailField(null=True, blank=True)
    phone = models.CharField(max_length=20, null=True, blank=True)
    name = models.CharField(max_length=60, blank=True)
    password = models.CharField(max_length=200)
    tier = models.CharField(max_length=30, blank=True, help_text="Member level, set by the distribution plugin.")
    wallet_balance = models.BigIntegerField(default=0)  # derived from WalletEntry rows, kept in step
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_login = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(models.functions.Lower("email"), name="customer_email_unique"),
            models.UniqueConstraint(fields=["phone"], name="customer_phone_unique"),
            models.CheckConstraint(name="customer_has_contact", condition=Q(email__isnull=False) | Q(phone__isnull=False)),
            models.CheckConstraint(name="wallet_never_negative", condition=Q(wallet_balance__gte=0)),
        ]

    def __str__(self):
        return self.email or self.phone or f"customer {self.pk}"

    def set_password(self, raw: str) -> None:
        self.password = make_password(raw)

    def check_password(self, raw: str) -> bool:
        return check_password(raw, self.password)


class WalletEntry(models.Model):
    """One movement of a wallet. ``balance_after`` chains the entries; the database
    refuses a negative balance."""

    class Kind(models.TextChoices):
        TOPUP = "topup"
        PAYMENT = "payment"
        REFUND = "refund"
        ADJUSTMENT = "adjustment"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="wallet_entries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    order = models.ForeignKey("orders.Order", null=True, blank=True, on_delete=models.PROTECT)
    reference = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(name="wallet_entry_balance_not_negative", condition=Q(balance_after__gte=0)),
            models.CheckConstraint(name="wallet_entry_not_zero", condition=~Q(amount=0)),
            models.UniqueConstraint(fields=["kind", "reference"], condition=~Q(reference=""),
                                    name="wallet_entry_reference_once"),
        ]
