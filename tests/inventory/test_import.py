"""keys_import: encryption at rest, de-duplication, counters, unreadable files, hooks."""
from __future__ import annotations

import io
import threading

import pytest
from django.db import connection

from platform_core.inventory import importing
from platform_core.inventory.models import CardKey, ImportBatch
from platform_core.inventory.parsers import ImportFileError
from platform_core.inventory.services import StockError, keys_import
from platform_core.inventory.stock import KeyCipher, recount
from tests.inventory.conftest import counters, raw_secrets


def test_keys_are_stored_as_ciphertext_and_decrypt_back(importer, sku, in_alpha):
    batch = importer("PLAIN-SECRET-0001\nPLAIN-SECRET-0002\n")
    assert (batch.status, batch.imported) == ("done", 2)
    stored = raw_secrets(sku)
    assert len(stored) == 2
    assert all("PLAIN-SECRET" not in value and value.startswith("k1.") for value in stored)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM inventory_cardkey WHERE secret LIKE '%%PLAIN%%' "
                       "OR fingerprint LIKE '%%PLAIN%%'")
        assert cursor.fetchone()[0] == 0
    cipher = KeyCipher(in_alpha)
    assert sorted(cipher.decrypt(value) for value in stored) == ["PLAIN-SECRET-0001", "PLAIN-SECRET-0002"]
    for key in CardKey.objects.filter(sku=sku):
        assert key.fingerprint == cipher.fingerprint(cipher.decrypt(key.secret))
        assert (key.status, key.is_loop, key.product_id_copy, key.batch_id) == ("available", False, sku.product_id,
                                                                               batch.pk)


def test_bulk_sealer_matches_the_key_cipher(in_alpha):
    sealer, cipher = importing.KeySealer(in_alpha), KeyCipher(in_alpha)
    for secret in ["x", "卡密 密码", "A" * 500]:
        assert sealer.fingerprint(secret.encode()) == cipher.fingerprint(secret)
    sealed = sealer.seal_chunk(["K1", "K2", "K1"])
    assert (sealed.distinct, sealed.in_file_duplicates) == (2, 1)
    rows = [line.split("\t") for line in sealed.copy_data.splitlines()]
    assert [cipher.decrypt(token) for _, token in rows] == ["K1", "K2"]
    assert [fingerprint for fingerprint, _ in rows] == [cipher.fingerprint("K1"), cipher.fingerprint("K2")]


def test_duplicates_within_a_file_and_across_imports_are_skipped_and_counted(importer, sku):
    first = importer("K1\nK2\nK1\nK3\nK2\n")
    assert (first.imported, first.duplicates, first.invalid) == (3, 2, 0)
    again = importer("K3\nK4\nK1\n")
    assert (again.imported, again.duplicates) == (1, 2)
    assert "1 imported, 2 duplicate(s) skipped" in again.message
    assert CardKey.objects.filter(sku=sku).count() == 4
    assert counters(sku) == {"available": 4, "reserved": 0, "sold": 0} == recount(sku.pk)


def test_duplicates_across_skus_of_one_product_are_skipped(importer, sku, product):
    from platform_core.catalog.models import SKU

    other = SKU.objects.create(product=product, name="90 days", price=2500)
    importer("SHARED\n")
    assert importer("SHARED\nOWN\n", target=other).imported == 1


def test_the_same_pair_with_another_separator_is_a_duplicate(importer, sku):
    importer("CARD1----PASS1\n", separator="----")
    batch = importer("card,password\nCARD1,PASS1\n", source="csv")
    assert (batch.imported, batch.duplicates) == (0, 1)


def test_chunks_commit_progress_and_errors_are_kept_in_line_order(importer, sku, monkeypatch):
    monkeypatch.setattr(importing, "CHUNK_SIZE", 3)
    seen = []
    lines = [f"KEY-{n}" if n % 4 else "BAD\x01" for n in range(1, 21)]
    batch = importer("\n".join(lines) + "\n", progress=lambda b: seen.append((b.processed_lines, b.imported)))
    assert (batch.imported, batch.invalid, batch.total_lines, batch.processed_lines) == (15, 5, 20, 20)
    assert [error["line"] for error in batch.errors] == [4, 8, 12, 16, 20]
    assert seen[0] == (0, 0) and len(seen) == 1 + 7 and seen[-1] == (20, 15)  # the start, then each chunk
    stored = ImportBatch.objects.get(pk=batch.pk)
    assert (stored.imported, stored.invalid, stored.status, stored.percent) == (15, 5, "done", 100)
    assert sorted(e["line"] for e in stored.errors) == [4, 8, 12, 16, 20]
    assert counters(sku)["available"] == 15 == recount(sku.pk)["available"]


def test_only_the_first_200_errors_are_listed(importer, monkeypatch):
    monkeypatch.setattr(importing, "CHUNK_SIZE", 50)
    batch = importer("BAD\x01\n" * 250 + "GOOD\n")
    assert (batch.invalid, len(batch.errors), batch.imported) == (250, 200, 1)


@pytest.mark.parametrize("source, content", [
    ("xlsx", b"KEY-1\nKEY-2\n"),                         # an XLSX that is not XLSX
    ("txt", bytes(range(256)) * 16),                     # a binary file
    ("csv", b"K1,P1\nK2\x00,P2\n"),                       # a CSV with NUL bytes
    ("txt", b"KEY-1\n" * 10 + b"\xff\xfe\x80\x81\x82"),   # valid lines, then garbage: still nothing
])
def test_an_unreadable_file_imports_nothing(importer, sku, source, content):
    importer("EXISTING\n")
    before = counters(sku)
    with pytest.raises(ImportFileError) as failure:
        importer(content, source=source)
    assert str(failure.value)
    batch = ImportBatch.objects.latest("id")
    assert batch.status == "failed" and "Nothing was imported" in batch.message and batch.imported == 0
    assert CardKey.objects.filter(sku=sku).count() == 1
    assert counters(sku) == before == recount(sku.pk)


def test_a_failure_half_way_takes_back_the_chunks_already_written(importer, sku, monkeypatch):
    """A workbook damaged after its first rows: the committed chunks are removed again."""
    monkeypatch.setattr(importing, "CHUNK_SIZE", 2)
    from platform_core.inventory import parsers

    def broken_text(stream, *, separator=None, encoding):
        yield from parsers.read_text_lines(["K1", "K2", "K3", "K4", "K5"], separator=separator)
        raise ImportFileError("The XLSX workbook is damaged: simulated.")

    monkeypatch.setattr(parsers, "read_text", broken_text)
    with pytest.raises(ImportFileError):
        importer("anything\n")
    batch = ImportBatch.objects.latest("id")
    assert batch.status == "failed" and "damaged" in batch.message
    assert not CardKey.objects.filter(sku=sku).exists()
    assert counters(sku) == {"available": 0, "reserved": 0, "sold": 0}


def test_loop_keys(importer, sku):
    batch = importer("SHARED-DOWNLOAD-CODE\n", loop=True)
    key = CardKey.objects.get(batch=batch)
    assert key.is_loop and key.status == "available" and counters(sku)["available"] == 1


def test_lines_source_for_the_api(in_alpha, sku):
    batch = keys_import(shop=in_alpha, sku=sku, source="api", lines=["A1", "A2", "", "A1"])
    assert (batch.source, batch.imported, batch.duplicates, batch.total_lines) == ("api", 2, 1, 4)


def test_only_card_key_products_have_stock(in_alpha):
    from platform_core.catalog.models import SKU, Product

    manual = Product.objects.create(name="Handmade", type=Product.Type.MANUAL)
    sku = SKU.objects.create(product=manual, price=100)
    with pytest.raises(StockError, match="not a card-key product"):
        keys_import(shop=in_alpha, sku=sku, source="paste", lines=["K"])
    assert not ImportBatch.objects.filter(sku=sku).exists()


def test_import_is_audited_and_hands_stock_to_waiting_orders(importer, sku, monkeypatch):
    from platform_core.audit.models import AuditEvent
    from platform_core.orders import services as order_services

    calls = []
    monkeypatch.setattr(order_services, "orders_fulfil_awaiting_stock", lambda *, sku_id: calls.append(sku_id),
                        raising=False)
    batch = importer("K1\nK2\n")
    assert calls == [sku.pk]
    event = AuditEvent.objects.get(action="cardkey.imported")
    assert event.target_id == str(batch.pk) and event.data["imported"] == 2
    assert "K1" not in str(event.data)


def test_a_stream_that_cannot_seek_is_spooled(in_alpha, sku):
    reading, writing = __import__("os").pipe()
    with open(writing, "wb") as out:
        out.write(b"P1\nP2\n")
    with open(reading, "rb") as pipe:
        batch = keys_import(shop=in_alpha, sku=sku, source="txt", stream=pipe)
    assert batch.imported == 2


# --- two writer connections, committed (as the Celery task runs it) -----------------

@pytest.fixture
def committed_sku(django_db_setup, django_db_blocker):
    from django_tenants.utils import tenant_context

    from platform_core.catalog.models import SKU, Product
    from tenants.models import Shop

    with django_db_blocker.unblock():
        shop = Shop.objects.get(slug="alpha")
        with tenant_context(shop):
            product = Product.objects.create(name="Committed", type=Product.Type.CARD_KEY)
            sku = SKU.objects.create(product=product, price=100)
            try:
                yield shop, sku
            finally:
                CardKey.objects.filter(sku=sku).delete()
                ImportBatch.objects.filter(sku=sku).delete()
                sku.delete()
                product.delete()
        connection.set_schema_to_public()


def test_two_writer_connections_import_everything_once(committed_sku, monkeypatch):
    shop, sku = committed_sku
    monkeypatch.setattr(importing, "CHUNK_SIZE", 100)
    batch = ImportBatch.objects.create(sku=sku, source="txt")
    threads = set()
    original = importing.ChunkWriter.write

    def write(self, chunk, sealed):
        threads.add(threading.current_thread().name)
        return original(self, chunk, sealed)

    monkeypatch.setattr(importing.ChunkWriter, "write", write)
    lines = [f"KEY-{n:05d}" for n in range(2000)] + ["KEY-00001", "BAD\x02"]
    source = importing.open_source(stream=io.BytesIO(("\n".join(lines) + "\n").encode()))
    importing.run_import(shop=shop, sku=sku, batch=batch, source=source, loop=False, writers=2)
    assert threads == {"key-writer-0", "key-writer-1"}
    stored = ImportBatch.objects.get(pk=batch.pk)
    assert (stored.imported, stored.duplicates, stored.invalid, stored.processed_lines) == (2000, 1, 1, 2002)
    assert (batch.imported, batch.duplicates, batch.invalid) == (2000, 1, 1)
    assert stored.errors == [{"line": 2002, "error": "contains a tab or another control character"}]
    sku.refresh_from_db()
    assert sku.available_count == 2000 == recount(sku.pk)["available"]


def test_a_writer_failure_stops_the_import_and_takes_its_keys_back(committed_sku, monkeypatch):
    shop, sku = committed_sku
    monkeypatch.setattr(importing, "CHUNK_SIZE", 100)
    batch = ImportBatch.objects.create(sku=sku, source="txt")
    original, calls = importing.ChunkWriter.write, []

    def write(self, chunk, sealed):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("database went away")
        return original(self, chunk, sealed)

    monkeypatch.setattr(importing.ChunkWriter, "write", write)
    source = importing.open_source(stream=io.BytesIO("".join(f"K{n}\n" for n in range(3000)).encode()))
    with pytest.raises(RuntimeError, match="went away"):
        importing.run_import(shop=shop, sku=sku, batch=batch, source=source, loop=False, writers=2)
    assert not CardKey.objects.filter(sku=sku).exists()
    sku.refresh_from_db()
    assert sku.available_count == 0
