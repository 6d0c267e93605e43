"""Shop-console stock pages: counts, import by upload and paste (eager Celery task),
progress JSON, keys masked, reveal / void / export for owner and admins only."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from platform_core.audit.models import AuditEvent
from platform_core.inventory.models import CardKey, ImportBatch
from platform_core.inventory.stock import recount
from tests.inventory.conftest import counters
from tests.inventory.test_parsers import xlsx_bytes


@pytest.fixture
def owner(shop_client, alpha, alice):
    return shop_client(alpha, alice)


@pytest.fixture
def staff(shop_client, alpha):
    from tenants.models import Merchant, ShopMembership

    merchant = Merchant.objects.create_user("stan@example.com", "pw-stan-12345", name="Stan")
    ShopMembership.objects.create(shop=alpha, merchant=merchant, role=ShopMembership.Role.STAFF)
    return shop_client(alpha, merchant)


@pytest.fixture
def storage(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                     "OPTIONS": {"location": str(tmp_path)}}}
    return tmp_path


def uploaded_files(storage) -> list:
    return [path for path in storage.rglob("*") if path.is_file()]


def test_stock_page_shows_counters_from_the_sku_row(owner, sku, importer):
    importer("K1\nK2\nK3\n")
    type(sku).objects.filter(pk=sku.pk).update(reserved_count=7)  # counters are read, not counted
    page = owner.get("/manage/stock/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Game card" in html and "30 days" in html
    assert 'data-count="available">3' in html and 'data-count="reserved">7' in html
    assert f"/manage/stock/sku/{sku.pk}/import/" in html


def test_import_by_upload_end_to_end(owner, sku, storage, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("keys.csv", b"card,password\nC1,P1\nC2,P2\nC1,P1\nC3\n", content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(f"/manage/stock/sku/{sku.pk}/import/", {"file": upload, "layout": "comma"})
    assert response.status_code == 302
    batch = ImportBatch.objects.get()
    assert response["Location"] == f"/manage/stock/batches/{batch.pk}/"
    assert (batch.status, batch.source, batch.filename, batch.created_by_email) == ("done", "csv", "keys.csv",
                                                                                 "alice@example.com")
    assert (batch.imported, batch.duplicates, batch.invalid) == (2, 1, 1)
    assert counters(sku)["available"] == 2 == recount(sku.pk)["available"]
    assert uploaded_files(storage) == []  # the plaintext upload is gone

    page = owner.get(response["Location"])
    assert page.status_code == 200 and b"progressbar" in page.content and b"fetch(" in page.content
    progress = owner.get(f"/manage/stock/batches/{batch.pk}/progress.json").json()
    assert progress["status"] == "done" and progress["finished"] and progress["percent"] == 100
    assert (progress["imported"], progress["duplicates"], progress["invalid"]) == (2, 1, 1)
    assert progress["errors"] == [{"line": 5, "error": "missing password (expected card,password)"}]


def test_import_by_paste_with_loop(owner, sku, storage, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(f"/manage/stock/sku/{sku.pk}/import/", {"keys": "SHARED-CODE\n", "loop": "on"})
    assert response.status_code == 302
    batch = ImportBatch.objects.get()
    assert (batch.source, batch.imported) == ("paste", 1)
    assert CardKey.objects.get().is_loop
    assert uploaded_files(storage) == []


def test_xlsx_upload_that_is_not_xlsx_fails_cleanly(owner, sku, storage, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        owner.post(f"/manage/stock/sku/{sku.pk}/import/",
                   {"file": SimpleUploadedFile("keys.xlsx", b"K1\nK2\n"), "format": ""})
    batch = ImportBatch.objects.get()
    assert batch.status == "failed" and "not an XLSX workbook" in batch.message
    assert not CardKey.objects.exists() and counters(sku)["available"] == 0
    progress = owner.get(f"/manage/stock/batches/{batch.pk}/progress.json").json()
    assert progress["status"] == "failed" and "Nothing was imported" in progress["message"]
    assert uploaded_files(storage) == []


def test_xlsx_upload_imports(owner, sku, storage, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        owner.post(f"/manage/stock/sku/{sku.pk}/import/",
                   {"file": SimpleUploadedFile("keys.xlsx", xlsx_bytes([["卡号", "密码"], ["X1", "Y1"]]))})
    assert ImportBatch.objects.get().imported == 1
    assert CardKey.objects.count() == 1


def test_import_form_needs_exactly_one_input(owner, sku):
    both = owner.post(f"/manage/stock/sku/{sku.pk}/import/",
                      {"keys": "K1", "file": SimpleUploadedFile("k.txt", b"K2\n")})
    neither = owner.post(f"/manage/stock/sku/{sku.pk}/import/", {"keys": "  "})
    for response in (both, neither):
        assert response.status_code == 200 and b"one of the two" in response.content
    assert not ImportBatch.objects.exists()


def test_staff_can_look_but_not_change(staff, sku, importer):
    importer("K1\n")
    key = CardKey.objects.get()
    assert staff.get("/manage/stock/").status_code == 200
    keys_page = staff.get(f"/manage/stock/sku/{sku.pk}/")
    assert keys_page.status_code == 200 and b"Reveal" not in keys_page.content
    assert staff.post(f"/manage/stock/sku/{sku.pk}/import/", {"keys": "K2"}).status_code == 403
    assert staff.post(f"/manage/stock/keys/{key.pk}/reveal/").status_code == 403
    assert staff.post(f"/manage/stock/sku/{sku.pk}/void/", {"key": [key.pk]}).status_code == 403
    assert staff.post(f"/manage/stock/sku/{sku.pk}/export/").status_code == 403
    assert CardKey.objects.get().status == "available"
    assert not AuditEvent.objects.filter(action__in=["cardkey.revealed", "cardkey.exported", "cardkey.voided"]).exists()


def test_keys_are_masked_and_reveal_is_audited(owner, sku, importer):
    importer("ABCDEFGHIJKLMNOP\n")
    key = CardKey.objects.get()
    page = owner.get(f"/manage/stock/sku/{sku.pk}/").content.decode()
    assert "ABCDEFGHIJKLMNOP" not in page and "ABC" in page and "OP</code>" in page
    revealed = owner.post(f"/manage/stock/keys/{key.pk}/reveal/", HTTP_ACCEPT="application/json")
    assert revealed.json() == {"id": key.pk, "secret": "ABCDEFGHIJKLMNOP"}
    assert "no-store" in revealed["Cache-Control"]
    as_page = owner.post(f"/manage/stock/keys/{key.pk}/reveal/")
    assert as_page.status_code == 200 and b"ABCDEFGHIJKLMNOP" in as_page.content
    assert AuditEvent.objects.filter(action="cardkey.revealed").count() == 2
    assert owner.get(f"/manage/stock/keys/{key.pk}/reveal/").status_code == 405


def test_void_selected_and_export_unsold(owner, sku, importer):
    importer("V1\nV2\nV3\n")
    first, second, _ = CardKey.objects.order_by("id")
    response = owner.post(f"/manage/stock/sku/{sku.pk}/void/", {"key": [first.pk, second.pk]})
    assert response.status_code == 302
    assert counters(sku)["available"] == 1 == recount(sku.pk)["available"]
    assert owner.get(f"/manage/stock/sku/{sku.pk}/?status=void").content.count(b"<code") == 2

    export = owner.post(f"/manage/stock/sku/{sku.pk}/export/")
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    assert b"".join(export.streaming_content).decode().splitlines() == ["key", "V3"]
    assert AuditEvent.objects.filter(action="cardkey.exported").count() == 1


def test_other_product_types_have_no_stock_pages(owner, in_alpha):
    from platform_core.catalog.models import SKU, Product

    manual = SKU.objects.create(product=Product.objects.create(name="Manual", type="manual"), price=1)
    assert owner.get(f"/manage/stock/sku/{manual.pk}/").status_code == 404


def test_import_history_is_read_only_in_the_console(owner, staff, importer):
    batch = importer("K1\n")
    listing = owner.get("/manage/inventory/importbatch/")
    assert listing.status_code == 200 and f"/manage/stock/batches/{batch.pk}/".encode() in listing.content
    assert staff.get("/manage/inventory/importbatch/").status_code == 200
    assert owner.get("/manage/inventory/importbatch/add/").status_code == 403
