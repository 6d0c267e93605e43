"""Shared primitives of card-key stock: fingerprints, encryption, stock counters.

Every change of a key's status goes with a counter change on its SKU in the same
transaction (:func:`adjust_counts`), so stock figures are read from the SKU row
instead of counting keys on every page view."""
from __future__ import annotations

import hashlib
import hmac


from platform_core import crypto
from platform_core.db.cursors import statement_cursor
from platform_core.db.rows import hold_write

KEY_CONTEXT = "inventory:cardkey"


class KeyCipher:
    """Encrypts and fingerprints card keys of one shop (keys cached once per use)."""

    def __init__(self, shop):
        self.shop = shop
        self._fingerprint_key = crypto.derived_key(shop, "cardkey-fingerprint")

    def fingerprint(self, secret: str) -> str:
        return hmac.new(self._fingerprint_key, secret.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, secret: str) -> str:
        return crypto.encrypt(self.shop, secret, context=KEY_CONTEXT)

    def decrypt(self, token: str) -> str:
        return crypto.decrypt_str(self.shop, token, context=KEY_CONTEXT)


def mask(secret: str) -> str:
    """What the console shows: the first and last characters only."""
    if len(secret) <= 6:
        return "•" * len(secret)
    return f"{secret[:3]}{'•' * min(len(secret) - 5, 12)}{secret[-2:]}"


#: of an updated ``catalog_sku s`` row: at or below its product's threshold, not alerted yet
LOW_STOCK_DUE_SQL = """NOT s.low_stock_alerted AND EXISTS (
    SELECT 1 FROM catalog_product p WHERE p.id = s.product_id AND p.low_stock_threshold > 0
      AND s.available_count <= p.low_stock_threshold)"""


def adjust_counts(sku_id: int, *, available: int = 0, reserved: int = 0, sold: int = 0) -> bool:
    """Move the SKU's counters by the given amounts (one statement: it runs on every
    sale). True when the SKU is now at or below its product's low-stock threshold and
    not alerted yet: the case :func:`platform_core.inventory.services.stock_check_low`
    alerts for, answered by the same statement so a sale that leaves plenty of stock
    costs no second read."""
    changes = [f"{column} = {column} + %s" for column, delta in
               (("available_count", available), ("reserved_count", reserved), ("sold_count", sold)) if delta]
    if not changes:
        return False
    with statement_cursor() as cursor:
        cursor.execute(
            f"UPDATE catalog_sku s SET {', '.join(changes)} WHERE id = %s RETURNING {LOW_STOCK_DUE_SQL}",
            [delta for delta in (available, reserved, sold) if delta] + [sku_id])
        row = cursor.fetchone()
    return bool(row and row[0])


def adjust_counts_held(sku_id: int, *, reserved: int = 0, sold: int = 0) -> None:
    """Move the SKU's reserved and sold counters, held to go with the transaction's last
    statement (``batched_writes``): every sale of a SKU updates its one row, and a row
    lock taken late is held for less of the transaction, so parallel sales of the SKU
    wait less for each other. The available count, which decides low-stock alerts, is
    not moved here."""
    if reserved or sold:
        hold_write("UPDATE catalog_sku SET reserved_count = reserved_count + %s, sold_count = sold_count + %s "
                   "WHERE id = %s", [reserved, sold, sku_id], table="catalog_sku", row_pk=sku_id)


def recount(sku_id: int) -> dict[str, int]:
    """Recompute a SKU's counters from its keys (repair, and a check in tests)."""
    from django.db.models import Count, Q

    from platform_core.catalog.models import SKU
    from platform_core.inventory.models import CardKey

    counts = CardKey.objects.filter(sku_id=sku_id).aggregate(
        available=Count("id", filter=Q(status="available")),
        reserved=Count("id", filter=Q(status="reserved")),
        sold=Count("id", filter=Q(status="sold")),
    )
    SKU.objects.filter(pk=sku_id).update(available_count=counts["available"], reserved_count=counts["reserved"],
                                         sold_count=counts["sold"])
    return counts


