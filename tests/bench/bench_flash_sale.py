"""flash_sale: buyers racing for keys through the HTTP API, paid and delivered.

Each buyer: ``POST /api/v1/orders/`` with ``payment`` (reserve, and the shop asks the
sandbox gateway for a payment in the same request), then the gateway's signed
``payment.succeeded`` webhook to ``/hooks/payments/sandbox/`` (sent by the buyer, as the
gateway would after the Pay button). Buyers run in 2 client processes, each driving its
buyers' connections from one event loop (tests/bench/_buyers.py).

1. race: 500 concurrent buyers for 100 keys -> flash_sale.sold, .duplicates, .orders_per_s
2. sustained: 10,000 keys, 200 concurrent buyers buying until sold out
   -> flash_sale.sustained_orders_per_s
   with where the CPU went during it, per paid order: the web workers, PostgreSQL, the
   sandbox gateway, the load generator, and the whole machine
   -> flash_sale.{web,db,gateway,client,machine}_cpu_ms_per_order, and how many database
   connections waited for another transaction's lock, on average -> flash_sale.lock_waiting
3. ceiling: the raw allocate statement (UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP
   LOCKED LIMIT 1)) in a psycopg loop, 8 connections -> flash_sale.pgbench_tps
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import threading
import time
from pathlib import Path

from tests.bench._harness import (LockWaitSampler, devstack, emit, migrate_everything, progress, setup_django,
                                  tree_cpu_seconds)
from tests.bench._shop import buyers_of, create_shop, product_with_stock, sandbox_gateway, web_server

NAME = "flash_sale"
SHOP = "flash"
CLIENT_PROCESSES = 2


def _buyer_process(args):
    """One client process's buyers on one event loop; returns (paid, refused, errors, first error)."""
    base, token, sku_id, buyers, repeat, start_at = args
    loop = buyers_of(base, token, sku_id, SHOP)
    contacts = [f"b{os.getpid()}x{n}@example.com" for n in range(buyers)]
    while time.time() < start_at:
        time.sleep(0.005)
    outcomes = loop.run(contacts, repeat=repeat)
    return outcomes.paid, outcomes.refused, outcomes.errors, outcomes.first_error


def _race(base, token, sku_id, buyers, loop) -> tuple[float, int, int, int]:
    start_at = time.time() + 1.0
    per_process = [buyers // CLIENT_PROCESSES + (1 if i < buyers % CLIENT_PROCESSES else 0)
                   for i in range(CLIENT_PROCESSES)]
    with multiprocessing.get_context("spawn").Pool(CLIENT_PROCESSES) as pool:
        results = pool.map(_buyer_process, [(base, token, sku_id, n, loop, start_at) for n in per_process])
    elapsed = time.time() - start_at
    for first_error in {r[3] for r in results if r[3]}:
        print(f"first error of a client process: {first_error}", file=sys.stderr)
    return elapsed, sum(r[0] for r in results), sum(r[1] for r in results), sum(r[2] for r in results)


def _machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine outside idle and iowait (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per part of the set-up over a measured stretch."""

    def __init__(self, *, web_pid: int, gateway_pid: int):
        from platform_core import devstack as ds

        postmaster = ds._read_postmaster(Path(os.environ["KAMENG_DEVSTACK_DIR"]) / "pg")
        self.roots = {"web": web_pid, "db": postmaster[0] if postmaster else 0, "gateway": gateway_pid}

    def read(self) -> dict[str, float]:
        clients = resource.getrusage(resource.RUSAGE_CHILDREN)  # the buyer processes, once reaped
        return {**{part: tree_cpu_seconds(pid) for part, pid in self.roots.items()},
                "client": clients.ru_utime + clients.ru_stime, "machine": _machine_busy_seconds()}


def _invariants(sku_id) -> tuple[int, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM inventory_cardkey WHERE sku_id = %s AND status = 'sold'", [sku_id])
        sold = cursor.fetchone()[0]
        cursor.execute("""SELECT count(*) FROM (SELECT card_key_id FROM inventory_deliveredkey d
                          JOIN inventory_cardkey k ON k.id = d.card_key_id WHERE k.sku_id = %s AND NOT d.is_loop
                          GROUP BY card_key_id HAVING count(*) > 1) dup""", [sku_id])
        duplicates = cursor.fetchone()[0]
    return sold, duplicates


def _raw_allocate_tps(schema: str, sku_id: int, line_id: int, seconds: float = 8.0,
                      connections_count: int = 8) -> float:
    import psycopg

    from platform_core.orders.services import ISSUE_ORDER_SQL

    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://")
    statement = (f'UPDATE "{schema}".inventory_cardkey SET status = \'sold\', sold_at = now(), order_line_id = %s '
                 f'WHERE id = (SELECT id FROM "{schema}".inventory_cardkey WHERE sku_id = %s AND status = \'available\' '
                 f'AND NOT is_loop ORDER BY {ISSUE_ORDER_SQL["oldest"]} LIMIT 1 FOR UPDATE SKIP LOCKED)')
    done = [0] * connections_count
    stop_at = time.time() + seconds

    def loop(i):
        with psycopg.connect(url, autocommit=True) as conn:
            while time.time() < stop_at:
                conn.execute(statement, [line_id, sku_id])
                done[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


def main() -> None:
    with devstack():
        setup_django()
        migrate_everything()
        from django_tenants.utils import tenant_context

        from platform_core import devstack as ds

        shop, token = create_shop(SHOP)
        skus = product_with_stock(shop, "Flash sale card", {
            "race": 100, "sustained": int(os.environ.get("BENCH_SUSTAINED_KEYS", "10000")), "raw": 60000})
        race_sku, sustained_sku, raw_sku = skus["race"], skus["sustained"], skus["raw"]
        with sandbox_gateway(shop) as gateway:
            # 3 sync workers, as `kameng web` runs by default: on 2 cores more workers cost
            # more CPU per order (measured 2: 131, 3: 132, 4: 125, 6: 115, 8: 106 orders/s)
            with web_server(ds.free_port(), workers=int(os.environ.get("BENCH_WEB_WORKERS", "3"))) as base:
                elapsed, paid, refused, errors = _race(base, token, race_sku.pk, 500, loop=False)
                with tenant_context(shop):
                    sold, duplicates = _invariants(race_sku.pk)
                progress(f"race: {paid} paid, {refused} refused, {errors} errors in {elapsed:.2f} s")
                emit("flash_sale.sold", sold, "keys")
                emit("flash_sale.duplicates", duplicates, "keys")
                emit("flash_sale.orders_per_s", paid / elapsed, "orders/s")
                emit("flash_sale.race_errors", errors, "requests")
                meter = CpuMeter(web_pid=base.pid, gateway_pid=gateway.pid)
                cpu_before = meter.read()
                with LockWaitSampler(os.environ["DATABASE_URL"]) as lock_waits:
                    elapsed, paid, refused, errors = _race(base, token, sustained_sku.pk, 200, loop=True)
                cpu_after = meter.read()
                with tenant_context(shop):
                    sold, duplicates = _invariants(sustained_sku.pk)
                progress(f"sustained: {paid} paid in {elapsed:.2f} s, {errors} errors, {duplicates} duplicates")
                emit("flash_sale.sustained_orders_per_s", paid / elapsed, "orders/s")
                emit("flash_sale.sustained_sold", sold, "keys")
                emit("flash_sale.sustained_duplicates", duplicates, "keys")
                for part in ("web", "db", "gateway", "client", "machine"):
                    emit(f"flash_sale.{part}_cpu_ms_per_order",
                         1000 * (cpu_after[part] - cpu_before[part]) / max(paid, 1), "ms")
                emit("flash_sale.lock_waiting", lock_waits.mean, "connections")
        with tenant_context(shop):
            from platform_core.orders.models import OrderLine

            line_id = OrderLine.objects.values_list("id", flat=True).first()
        emit("flash_sale.pgbench_tps", _raw_allocate_tps(shop.schema_name, raw_sku.pk, line_id), "tps")


if __name__ == "__main__":
    main()
