"""delivery: time from the payment webhook reaching the shop to the keys being readable
on the buyer's order page, over 1,000 orders (goal p99 < 100 ms; the seeds accept 5 s).

Each sample: a pending order with reserved keys (placed beforehand); the timer starts
when the signed sandbox webhook is sent to ``/hooks/payments/sandbox/`` and stops when
``GET /order/<number>/?t=<token>`` returns a page that shows the key. Baseline in the
same run: the same order page fetched again afterwards (``delivery.page_only_ms``).
"""
from __future__ import annotations

import os
import time

from tests.bench._harness import devstack, emit, migrate_everything, percentile, progress, setup_django
from tests.bench._shop import HOST_DOMAIN, add_plain_keys, create_shop, payment_succeeded_event, signed_webhook, web_server

NAME = "delivery"


def main() -> None:
    orders_count = int(os.environ.get("BENCH_ORDERS", "1000"))
    with devstack():
        setup_django()
        migrate_everything()
        import requests
        from django_tenants.utils import tenant_context

        from platform_core import devstack as ds
        from platform_core.catalog.models import SKU, Product
        from platform_core.orders.services import LineRequest, order_place
        from platform_core.payments.models import Payment

        shop, _ = create_shop("delivery")
        with tenant_context(shop):
            product = Product.objects.create(name="Bench card", max_quantity=10)
            sku = SKU.objects.create(product=product, price=1000)
            add_plain_keys(sku.pk, orders_count + 10, "DLV")
            pending = []
            for n in range(orders_count):
                order = order_place(lines=[LineRequest(sku.pk, 1)], contact=f"d{n}@example.com",
                                    query_password="1234")
                payment = Payment.objects.create(order=order, provider="sandbox", amount=order.total,
                                                 currency=order.currency)
                pending.append((order.number, order.access_token, payment.pk, order.total, order.currency))
        progress(f"{len(pending)} pending orders ready")
        host = f"delivery.{HOST_DOMAIN}"
        with web_server(ds.free_port()) as base:
            session = requests.Session()
            session.get(f"{base}/", headers={"Host": host})  # warm the workers
            samples, page_only = [], []
            for n, (number, token, payment_id, amount, currency) in enumerate(pending):
                body, headers = signed_webhook(payment_succeeded_event(payment_id, amount, currency, n))
                started = time.perf_counter()
                hook = session.post(f"{base}/hooks/payments/sandbox/", data=body, headers={**headers, "Host": host})
                page = session.get(f"{base}/order/{number}/?t={token}", headers={"Host": host})
                elapsed = time.perf_counter() - started
                if hook.status_code != 200 or "DLV-" not in page.text:
                    raise SystemExit(f"order {number} not delivered: webhook {hook.status_code}, page {page.status_code}")
                samples.append(elapsed * 1000)
                again = time.perf_counter()
                session.get(f"{base}/order/{number}/?t={token}", headers={"Host": host})
                page_only.append((time.perf_counter() - again) * 1000)
                if (n + 1) % 200 == 0:
                    progress(f"{n + 1}/{len(pending)} delivered")
        emit("delivery.p50_ms", percentile(samples, 50), "ms")
        emit("delivery.p99_ms", percentile(samples, 99), "ms")
        emit("delivery.max_ms", max(samples), "ms")
        emit("delivery.page_only_ms", percentile(page_only, 50), "ms")
        emit("delivery.orders", len(samples), "orders")


if __name__ == "__main__":
    main()
