"""Two beat runs at the same moment, each on its own connection, committing: every
dunning step happens once (one attempt, one reminder, one past-due event)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import connection, connections, transaction

from billing import collection
from billing.invoicing import _create
from billing.models import CollectionAttempt, Invoice, Subscription, SubscriptionEvent
from tenants import schema as schemas
from tests.conftest import PASSWORD

DUE = datetime(2032, 2, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def racing_shop(django_db_setup, django_db_blocker):
    from tenants.models import Domain, Shop, ShopDataKey, ShopMembership
    from tenants.services import shop_create

    with django_db_blocker.unblock():
        shop = shop_create(slug="dunrace", name="Dun Race", owner_email="dunrace@example.com",
                           owner_password=PASSWORD, sample_catalog=False).shop
        with transaction.atomic():
            invoice = _create(shop=shop, kind="invoice", currency="CNY", now=DUE,
                              lines=[{"kind": "subscription", "description": "Pro", "amount": 9900}])
        yield shop, invoice
        connection.set_schema_to_public()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")  # past the invoice guards
            cursor.execute("DELETE FROM billing_collectionattempt WHERE invoice_id = %s", [invoice.pk])
            cursor.execute("DELETE FROM billing_invoiceline WHERE invoice_id = %s", [invoice.pk])
            cursor.execute("DELETE FROM billing_invoice WHERE id = %s", [invoice.pk])
            cursor.execute("DELETE FROM billing_invoicecounter WHERE year = 2032")
        Domain.objects.filter(tenant=shop).delete()
        ShopMembership.objects.filter(shop=shop).delete()
        ShopDataKey.objects.filter(shop=shop).delete()
        schemas.drop_schema(shop.schema_name)
        Shop.objects.filter(pk=shop.pk).delete()
        from tenants.models import Merchant

        Merchant.objects.filter(email="dunrace@example.com").delete()


def _twice_at_once(now):
    barrier = threading.Barrier(2)
    results = [None, None]

    def run(n):
        try:
            barrier.wait()
            results[n] = collection.dunning_run(now=now)
        except Exception as exc:  # noqa: BLE001 - asserted below
            results[n] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(isinstance(r, Exception) for r in results), results
    return results


def test_two_runs_at_once_do_each_step_once(racing_shop):
    shop, invoice = racing_shop
    mail.outbox.clear()
    results = _twice_at_once(DUE)
    assert sum(r["steps"] for r in results) == 1
    results = _twice_at_once(DUE + timedelta(days=1))
    assert sum(r["steps"] for r in results) == 1
    invoice = Invoice.objects.get(pk=invoice.pk)
    assert invoice.attempt_count == 2
    assert CollectionAttempt.objects.filter(invoice=invoice).count() == 2
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Invoice INV-2032-000001", "Reminder"]
    assert Subscription.objects.get(shop=shop).status == "past_due"
    assert SubscriptionEvent.objects.filter(subscription__shop=shop, kind="subscription.past_due").count() == 1
    results = _twice_at_once(DUE + timedelta(days=10))
    assert sum(r["suspended"] for r in results) == 1
    shop.refresh_from_db()
    assert shop.status == "suspended"
