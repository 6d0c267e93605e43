"""Card-key stock services: import, reveal, void, export, the low-stock alert.

Every write of keys changes the SKU's counters in the same transaction
(:func:`~platform_core.inventory.stock.adjust_counts`), so stock figures come from the
SKU row, never from counting keys. Changing stock needs the shop's owner or an admin
(``actor``); ``actor=None`` means the system itself (the command line, Celery tasks).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from platform_core.audit.services import audit_record
from platform_core.catalog.models import SKU, Product
from platform_core.inventory import importing
from platform_core.inventory.models import CardKey, ImportBatch
from platform_core.inventory.parsers import FORMATS, ImportFileError
from platform_core.inventory.stock import KeyCipher, adjust_counts
from platform_core.notices.models import Notice, OutboundEvent

logger = logging.getLogger(__name__)

MANAGER_ROLES = frozenset({"owner", "admin"})
SOURCES = ("paste", "txt", "csv", "xlsx", "api")

__all__ = ["ImportFileError", "StockError", "key_reveal", "keys_export_unsold", "keys_import", "keys_void",
           "stock_check_low", "stock_rearm_low_alert"]


class StockError(Exception):
    """A request about stock that cannot be carried out (wrong product type, …)."""

    def __init__(self, message: str, *, code: str = "invalid"):
        super().__init__(message)
        self.message, self.code = message, code


def _require_manager(shop, actor, *, allow_system: bool = True) -> None:
    if actor is None and allow_system:
        return
    from tenants.services import membership_for

    membership = membership_for(actor, shop) if actor is not None else None
    if membership is None or membership.role not in MANAGER_ROLES:
        raise PermissionDenied("Only the shop's owner and admins can do this with card keys.")


# --- import --------------------------------------------------------------------------

def keys_import(*, shop, sku: SKU, source: str, stream=None, lines: Iterable[str] | None = None, filename: str = "",
                fmt: str | None = None, separator: str | None = None, pairs: bool = False, loop: bool = False,
                actor=None, batch: ImportBatch | None = None,
                progress: Callable[[ImportBatch], None] | None = None) -> ImportBatch:
    """Import keys into ``sku`` from a binary ``stream`` (a file) or from ``lines``.

    ``source`` is where they come from (paste / txt / csv / xlsx / api); the file
    format is ``fmt`` or, failing that, the source (paste and api are text).
    ``separator`` reads ``card<sep>password`` pairs; ``pairs`` requires column B in
    CSV / XLSX. Duplicates (in the file or already in stock for the product) and
    invalid lines are skipped and counted. An unreadable file imports nothing: the
    batch ends ``failed`` and :class:`ImportFileError` is raised. Runs in the shop's
    schema (the caller's ``tenant_context`` or the task's)."""
    _require_manager(shop, actor)
    if source not in SOURCES:
        raise StockError(f"Unknown import source {source!r}.")
    fmt = fmt or (source if source in FORMATS else "txt")
    sku = SKU.objects.select_related("product").get(pk=sku.pk)
    if sku.product.type != Product.Type.CARD_KEY:
        raise StockError(f"“{sku.product.name}” is not a card-key product; it has no key stock.", code="wrong_type")
    if (stream is None) == (lines is None):
        raise StockError("Give either a file or lines to import.")

    batch = _batch_start(batch, sku=sku, source=source, filename=filename, actor=actor)
    try:
        opened = importing.open_source(stream=stream, lines=lines, fmt=fmt, separator=separator, pairs=pairs)
        ImportBatch.objects.filter(pk=batch.pk).update(total_lines=opened.total_lines)
        batch.total_lines = opened.total_lines
        if progress is not None:
            progress(batch)
        importing.run_import(shop=shop, sku=sku, batch=batch, source=opened, loop=loop, progress=progress)
    except ImportFileError as exc:
        _batch_fail(batch, f"{exc} Nothing was imported.")
        raise
    except Exception as exc:
        _batch_fail(batch, f"The import failed ({type(exc).__name__}); nothing was imported. Please try again.")
        raise

    batch.status, batch.finished_at = ImportBatch.Status.DONE, timezone.now()
    batch.message = (f"{batch.imported} imported, {batch.duplicates} duplicate(s) skipped, "
                     f"{batch.invalid} invalid line(s) skipped.")
    batch.save(update_fields=["status", "finished_at", "message"])
    audit_record(action="cardkey.imported", actor=actor, target=batch,
                 data={"sku_id": sku.pk, "source": source, "filename": filename[:200], "imported": batch.imported,
                       "duplicates": batch.duplicates, "invalid": batch.invalid, "loop": loop})
    stock_rearm_low_alert(sku)
    _fulfil_awaiting_stock(sku.pk)
    return batch


def _batch_start(batch, *, sku, source, filename, actor) -> ImportBatch:
    if batch is None:
        batch = ImportBatch(sku=sku, source=source, filename=filename[:200],
                            created_by_email=getattr(actor, "email", "") or "")
    batch.status = ImportBatch.Status.RUNNING
    batch.processed_lines = batch.imported = batch.duplicates = batch.invalid = 0
    batch.errors, batch.message, batch.finished_at = [], "", None
    batch.save()
    return batch


def _batch_fail(batch: ImportBatch, message: str) -> None:
    batch.status, batch.message, batch.finished_at = ImportBatch.Status.FAILED, message[:300], timezone.now()
    # the batch's keys were taken back out, except any sold in the meantime
    batch.imported = CardKey.objects.filter(batch=batch).exclude(status=CardKey.Status.AVAILABLE).count()
    batch.save(update_fields=["status", "message", "finished_at", "imported"])


def _fulfil_awaiting_stock(sku_id: int) -> None:
    """Paid orders waiting for this SKU get their keys now (orders app, when present)."""
    try:
        from platform_core.orders.services import orders_fulfil_awaiting_stock
    except ImportError:
        return
    try:
        orders_fulfil_awaiting_stock(sku_id=sku_id)
    except Exception:  # noqa: BLE001 - the keys are in; the orders' beat job re-drives fulfilment
        logger.exception("fulfilling orders awaiting stock of SKU %s failed", sku_id)


# --- low-stock alert -----------------------------------------------------------------

def stock_check_low(sku: SKU | int) -> bool:
    """Alert once when the SKU's available stock is at or below its product's
    threshold: a console notice, a ``stock.low`` outbound event and an e-mail to the
    owners and admins. Call it after anything that lowers available stock. The flag
    is flipped by a conditional UPDATE, so concurrent sales alert exactly once.
    Returns whether an alert was raised."""
    sku_id = getattr(sku, "pk", sku)
    with transaction.atomic():
        flipped = SKU.objects.filter(pk=sku_id, low_stock_alerted=False, product__low_stock_threshold__gt=0,
                                     available_count__lte=F("product__low_stock_threshold")
                                     ).update(low_stock_alerted=True)
        if not flipped:
            return False
        current = SKU.objects.select_related("product").get(pk=sku_id)
        product, threshold = current.product, current.product.low_stock_threshold
        label = str(current)
        Notice.objects.create(
            kind="low_stock",
            message=f"Low stock: {label} has {current.available_count} key(s) left (alert at {threshold}).",
            data={"sku_id": current.pk, "product_id": product.pk, "available": current.available_count},
        )
        OutboundEvent.objects.create(kind="stock.low", payload={
            "sku": {"id": current.pk, "name": current.name},
            "product": {"id": product.pk, "name": product.name},
            "available": current.available_count,
            "threshold": threshold,
        })
        from platform_core.inventory.tasks import send_low_stock_email

        # after commit: no e-mail for a sale that rolls back; in a task: not on the buyer's request
        transaction.on_commit(lambda: send_low_stock_email.delay(current.pk, current.available_count))
    return True


def stock_rearm_low_alert(sku: SKU | int) -> bool:
    """Stock went back above the threshold: the next crossing alerts again."""
    return bool(SKU.objects.filter(pk=getattr(sku, "pk", sku), low_stock_alerted=True,
                                   available_count__gt=F("product__low_stock_threshold"))
                .update(low_stock_alerted=False))


def low_stock_recipients(shop) -> list[str]:
    from tenants.models import ShopMembership

    return sorted(set(ShopMembership.objects.filter(shop=shop, role__in=MANAGER_ROLES, merchant__is_active=True)
                      .values_list("merchant__email", flat=True)))


# --- reveal, void, export ------------------------------------------------------------

def key_reveal(*, shop, key: CardKey | int, actor, request=None) -> str:
    """The plaintext of one key, for the owner or an admin; always audited."""
    _require_manager(shop, actor, allow_system=False)
    if not isinstance(key, CardKey):
        key = CardKey.objects.get(pk=key)
    secret = KeyCipher(shop).decrypt(key.secret)
    audit_record(action="cardkey.revealed", actor=actor, target=key, request=request,
                 data={"sku_id": key.sku_id, "status": key.status})
    return secret


def keys_void(*, shop, key_ids: Iterable[int], actor, request=None, reason: str = "") -> int:
    """Void available keys (sold, reserved or already void ones are left alone).
    Returns how many were voided."""
    _require_manager(shop, actor)
    key_ids = sorted({int(pk) for pk in key_ids})
    if not key_ids:
        return 0
    with transaction.atomic():
        # the lock waits for a concurrent reservation, then re-checks the status
        locked = list(CardKey.objects.select_for_update().filter(pk__in=key_ids, status=CardKey.Status.AVAILABLE)
                      .values_list("pk", "sku_id"))
        if not locked:
            return 0
        CardKey.objects.filter(pk__in=[pk for pk, _ in locked]).update(status=CardKey.Status.VOID)
        per_sku = Counter(sku_id for _, sku_id in locked)
        for sku_id, count in per_sku.items():
            adjust_counts(sku_id, available=-count)
        audit_record(action="cardkey.voided", actor=actor, request=request, reason=reason,
                     data={"count": len(locked), "sku_ids": sorted(per_sku),
                           "key_ids": [pk for pk, _ in locked][:1000]})
        for sku_id in per_sku:
            stock_check_low(sku_id)
    return len(locked)


def keys_export_unsold(*, shop, sku: SKU, actor, request=None) -> Iterator[str]:
    """The plaintext of every available key of ``sku``, oldest first, streamed.
    The export is audited when it is requested."""
    _require_manager(shop, actor, allow_system=False)
    sku = SKU.objects.get(pk=sku.pk)
    audit_record(action="cardkey.exported", actor=actor, target=sku, request=request,
                 data={"sku_id": sku.pk, "count": sku.available_count})
    cipher = KeyCipher(shop)
    tokens = (CardKey.objects.filter(sku_id=sku.pk, status=CardKey.Status.AVAILABLE).order_by("created_at", "id")
              .values_list("secret", flat=True))
    return (cipher.decrypt(token) for token in tokens.iterator(chunk_size=2000))
