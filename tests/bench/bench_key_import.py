"""key_import: a 1,000,000-line TXT file of card keys into one SKU of a fresh shop.

1. ``kameng migrate``, one shop through ``shop_create``, a card-key product with one SKU.
2. A TXT file with BENCH_KEY_LINES unique keys (one per line) in a temp dir.
3. A child process imports it through ``keys_import`` — the service the
   ``importkeys`` command and the console's Celery task call — with fingerprints,
   AES-GCM encryption, de-duplication, counters and per-chunk progress commits.
   The child is timed around the service call only (not Django's start-up); its peak
   memory comes from ``os.wait4`` (ru_maxrss of that process alone)
                                      -> key_import.keys_per_s, .peak_rss_mb, .seconds
   ``rss_before_import_mb`` is the child's peak just before the import, so
   peak - before is what the import itself added (flat = independent of the file).
4. The same file again: every line is a duplicate       -> key_import.reimport_lines_per_s
5. Ceiling in the same run: raw ``COPY`` of the plaintext lines over one connection —
   no encryption, no de-duplication — into the key table of a second fresh shop
   (the same indexes, constraints and foreign-key checks)
                                      -> key_import.baseline_copy_keys_per_s

Environment: BENCH_KEY_LINES (1000000).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench._harness import (ROOT_DIR, bench_owners, child_env, devstack, emit, migrate_everything, progress,
                                  setup_django)

NAME = "key_import"
SLUG = "bench-keys"


def write_key_file(path: Path, lines: int) -> None:
    """Unique keys like ``KMG-00000042-9F3A1C7B2D4E6A80``, written in blocks (flat memory)."""
    block = 50_000
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, lines, block):
            noise = os.urandom(8 * block).hex()
            out.write("".join(f"KMG-{start + i:08d}-{noise[i * 16:i * 16 + 16].upper()}\n"
                              for i in range(min(block, lines - start))))


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(slug: str, sku_id: int, file_name: str) -> None:
    """Runs in its own process: one import through the service, timed; JSON on stdout."""
    setup_django()
    from django_tenants.utils import tenant_context

    from platform_core.catalog.models import SKU
    from platform_core.inventory.services import keys_import
    from tenants.models import Shop

    shop = Shop.objects.get(slug=slug)
    with tenant_context(shop):
        sku = SKU.objects.get(pk=sku_id)
        rss_before = _max_rss_mb()
        with open(file_name, "rb") as stream:
            started = time.perf_counter()
            batch = keys_import(shop=shop, sku=sku, source="txt", stream=stream, filename=Path(file_name).name)
            seconds = time.perf_counter() - started
        sku.refresh_from_db()
    print(json.dumps({"seconds": seconds, "imported": batch.imported, "duplicates": batch.duplicates,
                      "invalid": batch.invalid, "available": sku.available_count, "rss_before_mb": rss_before}))


def run_child(slug: str, sku_id: int, file_name: Path) -> tuple[dict, float]:
    """(the child's report, its peak RSS in MB)."""
    process = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_key_import", "--child", slug, str(sku_id),
                                str(file_name)], cwd=ROOT_DIR, env=child_env(), stdout=subprocess.PIPE)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"the import child failed (exit {process.returncode})")
    return json.loads(output.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def baseline_copy(file_name: Path, shop) -> float:
    """Seconds to COPY the plaintext lines, one connection, no encryption and no
    de-duplication, into the key table of another fresh shop: the same indexes,
    constraints and foreign-key checks the import pays for."""
    from django.db import connection, transaction
    from django.utils import timezone
    from django_tenants.utils import tenant_context

    from platform_core.catalog.models import SKU, Product
    from platform_core.inventory.models import ImportBatch

    with tenant_context(shop):
        product = Product.objects.create(name="Baseline card", type=Product.Type.CARD_KEY)
        sku = SKU.objects.create(product=product, name="default", price=100)
        batch = ImportBatch.objects.create(sku=sku, source="txt")
        constant = f"{sku.pk}\t{product.pk}\tavailable\tf\t{batch.pk}\t{timezone.now().isoformat()}\n"
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor, file_name.open(encoding="utf-8") as lines:
            with cursor.cursor.copy("COPY inventory_cardkey (secret, fingerprint, sku_id, product_id_copy, status, "
                                    "is_loop, batch_id, created_at) FROM STDIN") as copy:
                buffer = []
                for line in lines:
                    key = line.strip()
                    buffer.append(f"{key}\t{key}\t{constant}")  # plaintext as "ciphertext" and fingerprint
                    if len(buffer) >= 5000:
                        copy.write("".join(buffer))
                        buffer.clear()
                copy.write("".join(buffer))
        return time.perf_counter() - started


def run() -> None:
    lines = int(os.environ.get("BENCH_KEY_LINES", "1000000"))
    setup_django()
    from django_tenants.utils import tenant_context

    from platform_core.catalog.models import SKU, Product
    from tenants.services import shop_create, spare_pool_refill

    migrate_everything()
    shop = shop_create(slug=SLUG, name="Bench keys", owner=bench_owners(1)[0], language="en",
                       sample_catalog=False).shop
    with tenant_context(shop):
        product = Product.objects.create(name="Bench card", type=Product.Type.CARD_KEY)
        sku = SKU.objects.create(product=product, name="default", price=100)

    with tempfile.TemporaryDirectory(prefix="kameng-keys-") as workdir:
        key_file = Path(workdir) / "keys.txt"
        started = time.perf_counter()
        write_key_file(key_file, lines)
        progress(f"wrote {lines:,} keys ({key_file.stat().st_size / 1e6:.1f} MB) in "
                 f"{time.perf_counter() - started:.1f} s")

        progress("importing (child process)")
        first, peak_mb = run_child(SLUG, sku.pk, key_file)
        progress(f"import: {first}")
        if first["imported"] != lines or first["available"] != lines:
            raise RuntimeError(f"expected {lines} keys imported and available, got {first}")

        progress("importing the same file again (all duplicates)")
        again, again_peak_mb = run_child(SLUG, sku.pk, key_file)
        progress(f"re-import: {again}")
        if again["imported"] != 0 or again["duplicates"] != lines:
            raise RuntimeError(f"expected {lines} duplicates on re-import, got {again}")

        progress("baseline: raw COPY of the plaintext lines into another fresh shop, no encryption")
        spare_pool_refill()
        other = shop_create(slug=f"{SLUG}-copy", name="Bench copy", owner=bench_owners(1)[0], language="en",
                            sample_catalog=False).shop
        copy_seconds = baseline_copy(key_file, other)

    emit(f"{NAME}.keys_per_s", lines / first["seconds"], "keys/s")
    emit(f"{NAME}.peak_rss_mb", peak_mb, "MB")
    emit(f"{NAME}.rss_before_import_mb", first["rss_before_mb"], "MB")
    emit(f"{NAME}.seconds", first["seconds"], "s")
    emit(f"{NAME}.lines", lines, "lines")
    emit(f"{NAME}.reimport_lines_per_s", lines / again["seconds"], "lines/s")
    emit(f"{NAME}.reimport_peak_rss_mb", again_peak_mb, "MB")
    emit(f"{NAME}.baseline_copy_keys_per_s", lines / copy_seconds, "keys/s")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    with devstack():
        run()


if __name__ == "__main__":
    main()
