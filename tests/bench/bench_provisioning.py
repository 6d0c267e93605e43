"""provisioning: time to create a shop with 1,000 shops already on the database.

1. ``kameng migrate`` on a fresh database, then 1,000 shops through ``shop_create``.
2. warm pool: ``shop_create`` claims a spare schema (the pool is topped up between
   samples, outside the timed region)           -> provisioning.p50 / .p95 / .max
3. empty pool: ``shop_create`` clones the template on the request path
                                                -> provisioning.cold_clone_p50 / _p95
4. django-tenants' migration path, side by side: ``Shop(...).save()`` +
   ``create_schema(sync_schema=True)`` runs every tenant migration
                                                -> provisioning.migrate_p50 / _p95
   and ``provisioning.speedup`` = migrate_p95 / p95.

Each timed ``shop_create`` is the whole service call as the signup request runs it:
validation, claim or clone, shop row, domain, membership, data key, audit, seeders,
commit, and handing the welcome e-mail + pool refill to Celery (sent to Redis, not
run: settings_bench turns eager tasks off, as in production).

Environment: BENCH_SHOPS (1000), BENCH_SAMPLES (30), BENCH_COLD_SAMPLES (15),
BENCH_MIGRATE_SAMPLES (5), KAMENG_SPARE_SHOPS (pool size, 5).
"""
from __future__ import annotations

import os
import time

from tests.bench._harness import (bench_owners, devstack, emit, migrate_everything, percentile, populate_shops,
                                  progress, setup_django)

NAME = "provisioning"


def _timed_create(slug: str, owner) -> tuple[float, bool]:
    from tenants.services import shop_create

    started = time.perf_counter()
    created = shop_create(slug=slug, name=f"Timed {slug}", owner=owner, language="en", sample_catalog=False)
    return time.perf_counter() - started, created.from_pool


def _empty_pool() -> int:
    from django.db import transaction

    from tenants import schema as schemas
    from tenants.models import Shop

    dropped = 0
    with transaction.atomic():
        for spare in Shop.objects.select_for_update().filter(status=Shop.Status.SPARE):
            schemas.drop_schema(spare.schema_name)
            spare.delete()
            dropped += 1
    return dropped


def _migrate_create(schema_name: str) -> float:
    """django-tenants' own path: a tenant row, then CREATE SCHEMA + every migration."""
    from tenants.models import Shop

    started = time.perf_counter()
    shop = Shop(schema_name=schema_name, status=Shop.Status.SPARE)
    shop.save()
    shop.create_schema(check_if_exists=True, sync_schema=True, verbosity=0)
    return time.perf_counter() - started


def run() -> None:
    shops = int(os.environ.get("BENCH_SHOPS", "1000"))
    samples = int(os.environ.get("BENCH_SAMPLES", "30"))
    cold_samples = int(os.environ.get("BENCH_COLD_SAMPLES", "15"))
    migrate_samples = int(os.environ.get("BENCH_MIGRATE_SAMPLES", "5"))

    setup_django()
    from django.conf import settings
    from django.db import connection

    from tenants import schema as schemas
    from tenants.models import Shop
    from tenants.services import spare_pool_refill

    migrate_everything()
    populated_s = populate_shops(shops)
    on_db = Shop.objects.real().count()
    owner = bench_owners(1)[0]

    # --- warm pool -------------------------------------------------------------------
    progress(f"timing {samples} shop creations from a warm pool of {settings.KAMENG_SPARE_SHOPS} spares")
    warm: list[float] = []
    for index in range(samples):
        spare_pool_refill()  # what the Celery task does after each signup; not timed
        seconds, from_pool = _timed_create(f"warm{index:04d}", owner)
        if not from_pool:
            raise RuntimeError("a warm-pool sample did not come from the pool; the figures would be mislabelled")
        warm.append(seconds)
    progress("warm: " + " ".join(f"{s * 1000:.0f}" for s in warm) + " ms")

    # --- empty pool: lean clone on the request path ----------------------------------
    progress(f"emptied the pool ({_empty_pool()} spares); timing {cold_samples} creations that clone on the spot")
    cold: list[float] = []
    for index in range(cold_samples):
        seconds, from_pool = _timed_create(f"cold{index:04d}", owner)
        if from_pool:
            raise RuntimeError("a cold sample came from the pool; the figures would be mislabelled")
        cold.append(seconds)
    progress("cold: " + " ".join(f"{s * 1000:.0f}" for s in cold) + " ms")

    # --- migration-based creation (django-tenants' create_schema) ---------------------
    progress(f"timing {migrate_samples} migration-based creations (+1 untimed warm-up)")
    migrated_names = [f"bench_migrated_{index}" for index in range(migrate_samples + 1)]
    migrated: list[float] = []
    try:
        _migrate_create(migrated_names[0])
        for name in migrated_names[1:]:
            migrated.append(_migrate_create(name))
            connection.set_schema_to_public()
        progress("migrate: " + " ".join(f"{s * 1000:.0f}" for s in migrated) + " ms")
    finally:
        connection.set_schema_to_public()
        # these are status=spare rows: never let a later signup claim one of them
        for row in Shop.objects.filter(schema_name__in=migrated_names):
            schemas.drop_schema(row.schema_name)
            row.delete()

    p50, p95 = percentile(warm, 50), percentile(warm, 95)
    migrate_p95 = percentile(migrated, 95)
    emit(f"{NAME}.p50", p50, "s")
    emit(f"{NAME}.p95", p95, "s")
    emit(f"{NAME}.max", max(warm), "s")
    emit(f"{NAME}.cold_clone_p50", percentile(cold, 50), "s")
    emit(f"{NAME}.cold_clone_p95", percentile(cold, 95), "s")
    emit(f"{NAME}.migrate_p50", percentile(migrated, 50), "s")
    emit(f"{NAME}.migrate_p95", migrate_p95, "s")
    emit(f"{NAME}.speedup", migrate_p95 / p95, "x")
    emit(f"{NAME}.cold_speedup", migrate_p95 / percentile(cold, 95), "x")
    emit(f"{NAME}.shops_on_db", on_db, "shops")
    emit(f"{NAME}.samples", len(warm), "count")
    emit(f"{NAME}.populate_rate", shops / populated_s, "shops/s")


def main() -> None:
    with devstack():
        run()


if __name__ == "__main__":
    main()
