"""Card-key stock: keys encrypted at rest, de-duplicated by an HMAC fingerprint."""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class ImportBatch(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    sku = models.ForeignKey("catalog.SKU", on_delete=models.CASCADE, related_name="import_batches")
    source = models.CharField(max_length=10)  # paste / txt / csv / xlsx / api
    filename = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    total_lines = models.IntegerField(default=0)
    processed_lines = models.IntegerField(default=0)
    imported = models.IntegerField(default=0)
    duplicates = models.IntegerField(default=0)
    invalid = models.IntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [{"line": n, "error": "..."}], first 200
    message = models.CharField(max_length=300, blank=True)
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.DONE else int(100 * self.processed_lines / max(self.total_lines, 1))


class CardKey(models.Model):
    class Status(models.TextChoices):
        AVAILABLE = "available"
        RESERVED = "reserved"
        SOLD = "sold"
        VOID = "void"

    # indexed by cardkey_by_sku_status below (one index fewer to maintain on import).
    # The reference is checked once per statement by triggers (migration 0004, decision
    # 0037) instead of PostgreSQL's per-row foreign-key trigger, a third of an import's time.
    sku = models.ForeignKey("catalog.SKU", on_delete=models.CASCADE, related_name="keys", db_index=False,
                            db_constraint=False)
    product_id_copy = models.BigIntegerField(db_index=False)  # fingerprints are unique per product
    secret = models.TextField()  # ciphertext (platform_core.crypto), never plaintext
    fingerprint = models.CharField(max_length=64)  # HMAC-SHA256 of the plaintext with a per-shop key
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.AVAILABLE)
    is_loop = models.BooleanField(default=False, help_text="Reusable: sold to every buyer, never used up.")
    # indexed only where set (cardkey_by_order_line): imported keys have none
    order_line = models.ForeignKey("orders.OrderLine", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="reserved_keys", db_index=False)
    reserved_until = models.DateTimeField(null=True, blank=True)
    # bookkeeping only: no index and no FK check on the hot import path (~8 µs per key)
    batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, db_index=False,
                              db_constraint=False)
    created_at = models.DateTimeField(default=timezone.now)
    sold_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product_id_copy", "fingerprint"], name="cardkey_unique_per_product"),
            models.CheckConstraint(
                name="cardkey_state_consistent",
                condition=(Q(status="available", order_line__isnull=True) | Q(status="void")
                           | Q(status__in=["reserved", "sold"], order_line__isnull=False, is_loop=False)),
            ),
        ]
        indexes = [
            # allocation (sku, 'available', oldest first) reads only available keys of one SKU;
            # the console, the export and recounts use the same index by SKU. Keys are issued
            # by age (created_at, id), an order only this index provides: given "ORDER BY id"
            # the planner walks the primary key through every sold key when one SKU fills the
            # table (decision 0041)
            models.Index(fields=["sku", "status", "created_at", "id"], name="cardkey_by_sku_status"),
            models.Index(fields=["order_line"], name="cardkey_by_order_line", condition=Q(order_line__isnull=False)),
            models.Index(fields=["reserved_until"], name="cardkey_reserved_until", condition=Q(status="reserved")),
        ]


class DeliveredKey(models.Model):
    """A key handed to an order line. A normal key is delivered exactly once (unique);
    a loop key to many lines."""

    order_line = models.ForeignKey("orders.OrderLine", on_delete=models.PROTECT, related_name="delivered_keys")
    card_key = models.ForeignKey(CardKey, on_delete=models.PROTECT, related_name="deliveries")
    is_loop = models.BooleanField(default=False)
    delivered_at = models.DateTimeField(default=timezone.now)
    replaced_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["card_key"], condition=Q(is_loop=False), name="key_delivered_once"),
        ]
