"""The import task: runs in the shop's schema, deletes the upload, survives redelivery."""
from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django_tenants.utils import tenant_context

from platform_core.inventory.models import CardKey, ImportBatch
from platform_core.inventory.tasks import import_keys_task


@pytest.fixture
def storage(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES,
                         "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                     "OPTIONS": {"location": str(tmp_path)}}}
    from django.core.files.storage import default_storage

    return default_storage


def options(shop, **extra):
    return {"shop_id": shop.pk, "source": "txt", "fmt": "txt", "filename": "k.txt", **extra}


def test_task_imports_and_deletes_the_upload(in_alpha, sku, storage):
    path = storage.save("imports/k.txt", ContentFile(b"T1|P1\nT2|P2\n"))
    batch = ImportBatch.objects.create(sku=sku, source="txt")
    import_keys_task.delay(batch.pk, path, options(in_alpha, separator="|"))
    batch.refresh_from_db()
    assert (batch.status, batch.imported) == ("done", 2)
    assert not storage.exists(path)


def test_task_sent_from_the_public_schema_still_runs_in_the_shop(alpha, sku, storage):
    with tenant_context(alpha):
        path = storage.save("imports/k.txt", ContentFile(b"PUB-1\n"))
        batch = ImportBatch.objects.create(sku=sku, source="txt")
    connection.set_schema_to_public()
    import_keys_task.delay(batch.pk, path, options(alpha))
    with tenant_context(alpha):
        assert ImportBatch.objects.get(pk=batch.pk).imported == 1
        assert CardKey.objects.count() == 1


def test_redelivered_task_does_nothing_twice(in_alpha, sku, storage):
    path = storage.save("imports/k.txt", ContentFile(b"R1\n"))
    batch = ImportBatch.objects.create(sku=sku, source="txt", status=ImportBatch.Status.DONE, imported=1)
    import_keys_task.delay(batch.pk, path, options(in_alpha))
    assert not CardKey.objects.exists() and not storage.exists(path)


def test_missing_upload_fails_the_batch(in_alpha, sku, storage):
    batch = ImportBatch.objects.create(sku=sku, source="txt")
    import_keys_task.delay(batch.pk, "imports/gone.txt", options(in_alpha))
    batch.refresh_from_db()
    assert batch.status == "failed" and "upload it again" in batch.message


def test_wrong_product_type_fails_the_batch(in_alpha, storage):
    from platform_core.catalog.models import SKU, Product

    sku = SKU.objects.create(product=Product.objects.create(name="Top-up", type="topup"), price=1)
    path = storage.save("imports/k.txt", ContentFile(b"K\n"))
    batch = ImportBatch.objects.create(sku=sku, source="txt")
    import_keys_task.delay(batch.pk, path, options(in_alpha))
    batch.refresh_from_db()
    assert batch.status == "failed" and "not a card-key product" in batch.message
    assert not storage.exists(path)
