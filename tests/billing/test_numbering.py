"""Invoice numbers are consecutive under concurrent issuing: real threads, each on its
own database connection, committing; a rolled-back issue gives its number back."""
from __future__ import annotations

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, connections, transaction

from billing.invoicing import _create
from billing.models import Invoice, InvoiceCounter

YEAR = 2031
WHEN = datetime(YEAR, 3, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


class Abort(Exception):
    pass


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        yield
        with transaction.atomic(), connection.cursor() as cursor:
            # test cleanup only: the guard triggers refuse deletes, replica mode skips them
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute("DELETE FROM billing_invoiceline WHERE invoice_id IN "
                           "(SELECT id FROM billing_invoice WHERE year = %s)", [YEAR])
            cursor.execute("DELETE FROM billing_invoice WHERE year = %s", [YEAR])
            cursor.execute("DELETE FROM billing_invoicecounter WHERE year = %s", [YEAR])


def test_concurrent_issuing_leaves_no_gaps_and_no_duplicates(committed):
    from tenants.models import Shop

    threads_count = 12
    barrier = threading.Barrier(threads_count)
    results: list = [None] * threads_count

    def issue(n):
        try:
            shop = Shop.objects.get(slug="alpha" if n % 2 else "bravo")
            barrier.wait()
            with transaction.atomic():
                invoice = _create(shop=shop, kind="invoice", currency="CNY", now=WHEN,
                                  lines=[{"kind": "subscription", "description": f"test {n}", "amount": 100 + n}])
                if n % 4 == 0:  # a third of the issues fail after taking a number
                    raise Abort()
            results[n] = invoice.number
        except Abort:
            results[n] = "rolled back"
        except Exception as exc:  # noqa: BLE001 - asserted below
            results[n] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=issue, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    numbers = sorted(r for r in results if r != "rolled back")
    assert len(numbers) == threads_count - 3
    assert numbers == [f"INV-{YEAR}-{n:06d}" for n in range(1, len(numbers) + 1)]
    stored = list(Invoice.objects.filter(year=YEAR).order_by("sequence").values_list("sequence", flat=True))
    assert stored == list(range(1, len(numbers) + 1))
    assert InvoiceCounter.objects.get(series="INV", year=YEAR).last_number == len(numbers)
