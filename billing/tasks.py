"""Billing tasks: thin wrappers around the services; every one safe to run twice.
They run in the public schema (sent from beat with tenant_schemas=["public"])."""
from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone


@shared_task(name="billing.meter_usage")
def meter_usage(day: str | None = None) -> int:
    """Recompute GMV for yesterday and today (or one given ISO day) for every shop."""
    from datetime import date

    from billing.metering import usage_meter_all

    if day:
        return usage_meter_all(days=[date.fromisoformat(day)])
    today = timezone.localdate()
    return usage_meter_all(days=[today - timedelta(days=1), today])


@shared_task(name="billing.roll_subscriptions")
def roll_subscriptions() -> dict:
    from billing.services import subscriptions_roll

    return subscriptions_roll()


@shared_task(name="billing.issue_monthly_invoices")
def issue_monthly_invoices() -> int:
    from billing.invoicing import invoices_issue_last_month

    return invoices_issue_last_month()


@shared_task(name="billing.invoice_render_pdf", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def invoice_render_pdf(invoice_id: int) -> str:
    from billing.invoicing import invoice_store_pdf
    from billing.models import Invoice

    return invoice_store_pdf(invoice=Invoice.objects.get(pk=invoice_id))


@shared_task(name="billing.run_dunning")
def run_dunning() -> dict:
    from billing.collection import collection_poll_pending, dunning_run

    return {"polled": collection_poll_pending(), **dunning_run()}
