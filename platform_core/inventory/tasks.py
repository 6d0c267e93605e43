"""Thin Celery wrappers around inventory services. Sent from a shop's schema, they
run in that shop's schema (tenant-schemas-celery puts the schema in the headers)."""
from __future__ import annotations

import logging
from contextlib import nullcontext

from celery import shared_task
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import connection
from django.utils import timezone

logger = logging.getLogger(__name__)


def _in_shop(shop_id: int | None):
    """The task's own schema when it is the shop's; else switch explicitly (a task sent
    from the public schema by mistake must not import into public)."""
    from django_tenants.utils import tenant_context

    from tenants.models import Shop

    current = getattr(connection, "tenant", None)
    if shop_id is None or getattr(current, "pk", None) == shop_id:
        return nullcontext(current)
    return tenant_context(Shop.objects.get(pk=shop_id))


@shared_task(name="platform_core.inventory.tasks.import_keys_task", ignore_result=True)
def import_keys_task(batch_id: int, path: str, options: dict) -> None:
    """Import the uploaded file at ``path`` (default storage) into the batch's SKU, then
    delete the file: it holds plaintext keys.

    ``options``: shop_id, source, fmt, separator, pairs, loop, filename."""
    from platform_core.inventory.models import ImportBatch
    from platform_core.inventory.services import StockError, keys_import
    from platform_core.inventory.parsers import ImportFileError

    try:
        with _in_shop(options.get("shop_id")):
            batch = ImportBatch.objects.select_related("sku").filter(pk=batch_id).first()
            if batch is None:
                logger.error("import batch %s not found in schema %s", batch_id, connection.schema_name)
                return
            if batch.status in (ImportBatch.Status.DONE, ImportBatch.Status.FAILED):
                return  # delivered twice: already handled
            try:
                with default_storage.open(path, "rb") as upload:
                    keys_import(shop=connection.tenant, sku=batch.sku, source=options.get("source", "txt"),
                                stream=upload, filename=options.get("filename", ""), fmt=options.get("fmt"),
                                separator=options.get("separator"), pairs=bool(options.get("pairs")),
                                loop=bool(options.get("loop")), batch=batch)
            except ImportFileError:
                pass  # recorded on the batch for the console
            except StockError as exc:
                ImportBatch.objects.filter(pk=batch_id).update(
                    status=ImportBatch.Status.FAILED, finished_at=timezone.now(), message=exc.message[:300])
            except FileNotFoundError:
                ImportBatch.objects.filter(pk=batch_id).update(
                    status=ImportBatch.Status.FAILED, finished_at=timezone.now(),
                    message="The uploaded file is gone; please upload it again.")
    finally:
        try:
            default_storage.delete(path)
        except Exception:  # noqa: BLE001 - never mask the import's own outcome
            logger.exception("could not delete the uploaded key file %s", path)


@shared_task(name="platform_core.inventory.tasks.send_low_stock_email", ignore_result=True,
             autoretry_for=(OSError,), retry_backoff=10, max_retries=5)
def send_low_stock_email(sku_id: int, available: int) -> None:
    from platform_core.catalog.models import SKU
    from platform_core.inventory.services import low_stock_recipients

    shop = connection.tenant
    sku = SKU.objects.select_related("product").filter(pk=sku_id).first()
    recipients = low_stock_recipients(shop)
    if sku is None or not recipients:
        return
    send_mail(
        subject=f"[{shop.name}] Low stock: {sku}",
        message=(f"{sku} has {available} key(s) left; the alert is set at "
                 f"{sku.product.low_stock_threshold}.\n\nImport more keys in the shop console under Stock.\n"),
        from_email=None,
        recipient_list=recipients,
    )
