"""Catalog: two-level categories, products of a type, SKUs with their own price and stock."""
from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Category(models.Model):
    name = models.CharField(max_length=60)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
                               help_text="Leave empty for a top-level category (two levels at most).")
    sort_order = models.IntegerField(default=0)
    is_visible = models.BooleanField(default=True)

    class Meta:
        ordering = ["sort_order", "id"]
        verbose_name_plural = "categories"
        constraints = [models.CheckConstraint(name="category_not_own_parent", condition=~Q(parent=models.F("id")))]

    def __str__(self):
        return f"{self.parent.name} / {self.name}" if self.parent_id else self.name


class Product(models.Model):
    class Type(models.TextChoices):
        CARD_KEY = "card_key", _("Card key (instant delivery)")
        TOPUP = "topup", _("Direct top-up (buyer enters an account)")
        MANUAL = "manual", _("Manual delivery by staff")

    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products")
    name = models.CharField(max_length=120)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.CARD_KEY)
    description = models.TextField(blank=True, help_text="HTML allowed; scripts and styles are removed.")
    image = models.ImageField(upload_to="products/", blank=True)
    is_visible = models.BooleanField(default=True)
    member_only = models.BooleanField(default=False, help_text="Only signed-in members can buy it.")
    sort_order = models.IntegerField(default=0)
    min_quantity = models.PositiveIntegerField(default=1)
    max_quantity = models.PositiveIntegerField(default=100)
    account_pattern = models.CharField(max_length=200, blank=True,
                                       help_text="Top-up only: regular expression the buyer's account must match.")
    account_label = models.CharField(max_length=60, blank=True, default="", help_text="e.g. “Phone number”.")
    low_stock_threshold = models.PositiveIntegerField(default=0, help_text="Alert when available keys drop to this.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sort_order", "id"]
        constraints = [
            models.CheckConstraint(name="product_quantity_range",
                                   condition=Q(min_quantity__gte=1) & Q(max_quantity__gte=models.F("min_quantity"))),
        ]
        # ILIKE '%…%' searches use this trigram index
        indexes = [GinIndex(fields=["name"], opclasses=["gin_trgm_ops"], name="product_name_trgm")]

    def __str__(self):
        return self.name


class SKU(models.Model):
    class IssueOrder(models.TextChoices):
        OLDEST = "oldest", _("Oldest first")
        NEWEST = "newest", _("Newest first")
        RANDOM = "random", _("Random")

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="skus")
    name = models.CharField(max_length=60, default="", blank=True, help_text="e.g. “30 days”; empty for a single SKU.")
    price = models.BigIntegerField(help_text="In minor units (fen).")
    is_active = models.BooleanField(default=True)
    sort_order = models.IntegerField(default=0)
    issue_order = models.CharField(max_length=6, choices=IssueOrder.choices, default=IssueOrder.OLDEST)
    # stock counters, kept by inventory services in the same transactions as the keys
    available_count = models.IntegerField(default=0)
    reserved_count = models.IntegerField(default=0)
    sold_count = models.IntegerField(default=0)
    low_stock_alerted = models.BooleanField(default=False)

    class Meta:
        ordering = ["sort_order", "id"]
        verbose_name = "SKU"
        constraints = [
            models.CheckConstraint(name="sku_price_not_negative", condition=Q(price__gte=0)),
            models.CheckConstraint(name="sku_counts_not_negative",
                                   condition=Q(available_count__gte=0) & Q(reserved_count__gte=0) & Q(sold_count__gte=0)),
        ]

    def __str__(self):
        return f"{self.product.name} {self.name}".strip()


class WholesalePrice(models.Model):
    """From ``min_quantity`` units on, each costs ``unit_price``."""

    sku = models.ForeignKey(SKU, on_delete=models.CASCADE, related_name="wholesale_prices")
    min_quantity = models.PositiveIntegerField()
    unit_price = models.BigIntegerField()

    class Meta:
        ordering = ["min_quantity"]
        constraints = [
            models.UniqueConstraint(fields=["sku", "min_quantity"], name="one_wholesale_price_per_tier"),
            models.CheckConstraint(name="wholesale_price_valid", condition=Q(unit_price__gte=0) & Q(min_quantity__gte=2)),
        ]
