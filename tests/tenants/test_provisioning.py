"""Provisioning: the one service behind signup page, platform API and `kameng createshop`."""
from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django_tenants.utils import tenant_context

from platform_core.audit.models import AuditEvent
from tenants import schema as schemas
from tenants import services
from tenants.models import Domain, Merchant, Shop, ShopDataKey, ShopMembership
from tests.conftest import PASSWORD


def test_create_shop_from_pool_is_live_with_owner_domain_and_key(db, django_capture_on_commit_callbacks, mailoutbox):
    spares_before = Shop.objects.filter(status=Shop.Status.SPARE).count()
    with django_capture_on_commit_callbacks(execute=True):
        created = services.shop_create(slug="gamma-1", name="Gamma One", owner_email="Gina@Example.com",
                                       owner_password=PASSWORD, language="en")
    shop = Shop.objects.get(slug="gamma-1")
    assert created.from_pool is True
    assert shop.status == Shop.Status.TRIAL and shop.is_live
    assert shop.schema_name == "shop_gamma_1" and schemas.schema_exists("shop_gamma_1")
    assert Domain.objects.get(tenant=shop, is_primary=True).domain == "gamma-1.kameng.test"
    owner = Merchant.objects.get(email="gina@example.com")
    assert owner.check_password(PASSWORD)
    assert ShopMembership.objects.get(shop=shop).role == "owner"
    assert ShopDataKey.objects.filter(shop=shop, version=1).exists()
    assert AuditEvent.objects.filter(action="shop.created", target_id=str(shop.pk)).exists()
    # the schema is a faithful copy of the template, data rows included
    assert schemas.schema_fingerprint("shop_gamma_1") == schemas.schema_fingerprint(schemas.TEMPLATE_SCHEMA)
    with tenant_context(shop):
        assert AuditEvent.objects.filter(action="shop.launched").count() == 1
    # welcome e-mail went out and the pool was topped up again
    assert [m.to for m in mailoutbox] == [["gina@example.com"]]
    assert "gamma-1.kameng.test" in mailoutbox[0].body
    assert Shop.objects.filter(status=Shop.Status.SPARE).count() == max(spares_before, 2)


def test_empty_pool_falls_back_to_cloning_on_the_spot(db):
    Shop.objects.filter(status=Shop.Status.SPARE).delete()  # empty the pool (rolled back after the test)
    created = services.shop_create(slug="delta", name="Delta", owner_email="d@example.com", owner_password=PASSWORD)
    assert created.from_pool is False
    assert schemas.schema_fingerprint("shop_delta") == schemas.schema_fingerprint(schemas.TEMPLATE_SCHEMA)


def test_stale_spare_is_never_handed_out(db):
    spare = Shop.objects.filter(status=Shop.Status.SPARE).order_by("id").first()
    with connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{spare.schema_name}".django_migrations WHERE app = %s', ["plugins"])
    created = services.shop_create(slug="echo", name="Echo", owner_email="e@example.com", owner_password=PASSWORD)
    assert created.shop.pk != spare.pk
    assert Shop.objects.get(pk=spare.pk).status == Shop.Status.SPARE


@pytest.mark.parametrize("slug, code", [
    ("ab", "length"),
    ("a" * 31, "length"),
    ("", "length"),
    ("shop!", "format"),
    ("my_shop", "format"),
    ("-shop", "format"),
    ("shop-", "format"),
    ("sh op", "format"),
    ("xn--shop", "format"),
    ("店铺店铺", "format"),
    ("www", "reserved"),
    ("api", "reserved"),
    ("admin", "reserved"),
    ("static", "reserved"),
    ("console", "reserved"),
    ("mail", "reserved"),
    ("alpha", "taken"),
])
def test_invalid_slugs_are_refused_and_leave_nothing(db, slug, code):
    shops, schemas_before = Shop.objects.count(), _schemas()
    with pytest.raises(services.ShopCreationError) as error:
        services.shop_create(slug=slug, name="X", owner_email="x@example.com", owner_password=PASSWORD)
    assert error.value.code == code and error.value.field == "slug"
    assert Shop.objects.count() == shops and _schemas() == schemas_before
    assert not Merchant.objects.filter(email="x@example.com").exists()


@pytest.mark.parametrize("kwargs, field", [
    ({"name": ""}, "name"),
    ({"owner_email": "not-an-email"}, "email"),
    ({"owner_password": "short"}, "password"),
    ({"owner_email": "alice@example.com"}, "email"),  # account exists: log in instead
    ({"language": "fr"}, "language"),
    ({"currency": "yuan"}, "currency"),
])
def test_other_bad_input_is_refused_with_the_field_named(db, kwargs, field):
    values = {"slug": "foxtrot", "name": "Foxtrot", "owner_email": "f@example.com", "owner_password": PASSWORD,
              **kwargs}
    with pytest.raises(services.ShopCreationError) as error:
        services.shop_create(**values)
    assert error.value.field == field
    assert not Shop.objects.filter(slug="foxtrot").exists()


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'shop\\_%%' OR nspname LIKE 'spare\\_%%'")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.parametrize("failing_step", ["membership", "data_key", "seed"])
def test_failure_half_way_leaves_no_schema_domain_or_membership(db, monkeypatch, failing_step):
    spare_schemas = set(Shop.objects.filter(status=Shop.Status.SPARE).values_list("schema_name", flat=True))

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure")

    if failing_step == "membership":
        monkeypatch.setattr(ShopMembership.objects, "create", boom)
    elif failing_step == "data_key":
        monkeypatch.setattr(services.crypto, "create_data_key", boom)
    else:
        monkeypatch.setattr(services, "_seed_shop", boom)
    with pytest.raises(RuntimeError, match="injected"):
        services.shop_create(slug="golf", name="Golf", owner_email="g@example.com", owner_password=PASSWORD)
    assert not Shop.objects.filter(slug="golf").exists()
    assert not Domain.objects.filter(domain__startswith="golf.").exists()
    assert not Merchant.objects.filter(email="g@example.com").exists()
    assert not schemas.schema_exists("shop_golf")
    # the claimed spare went back to the pool under its old name
    assert set(Shop.objects.filter(status=Shop.Status.SPARE).values_list("schema_name", flat=True)) == spare_schemas
    assert spare_schemas <= _schemas()


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Real commits (for races between connections); cleans up what it made."""
    with django_db_blocker.unblock():
        before = set(Shop.objects.values_list("pk", flat=True))
        yield
        connection.set_schema_to_public()
        for shop in Shop.objects.exclude(pk__in=before):
            Domain.objects.filter(tenant=shop).delete()
            ShopMembership.objects.filter(shop=shop).delete()
            ShopDataKey.objects.filter(shop=shop).delete()
            schemas.drop_schema(shop.schema_name)
            Shop.objects.filter(pk=shop.pk).delete()
        Merchant.objects.filter(email__startswith="racer").delete()


def test_concurrent_signups_for_one_slug_make_one_shop_and_one_clear_error(committed):
    services.spare_pool_refill(4)
    barrier = threading.Barrier(4)
    results: list[object] = []

    def signup(n):
        try:
            barrier.wait()
            created = services.shop_create(slug="hotel", name="Hotel", owner_email=f"racer{n}@example.com",
                                           owner_password=PASSWORD)
            results.append(created.shop.pk)
        except services.ShopCreationError as exc:
            results.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=signup, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, results)).count("taken") == 3
    assert Shop.objects.filter(slug="hotel").count() == 1
    assert Domain.objects.filter(domain="hotel.kameng.test").count() == 1
    hotel = Shop.objects.get(slug="hotel")
    assert ShopMembership.objects.filter(shop=hotel).count() == 1
    # losers' accounts rolled back with their attempt; no orphan schema
    assert Merchant.objects.filter(email__startswith="racer").count() == 1
    assert {s for s in _schemas() if s.startswith("shop_hotel")} == {"shop_hotel"}
    assert Shop.objects.filter(status=Shop.Status.SPARE).count() >= 3


def test_createshop_command(db, capsys):
    from django.core.management import call_command

    call_command("createshop", "india", "--owner", "ivy@example.com", "--name", "India Store", "--no-sample")
    out = capsys.readouterr().out
    assert "Shop india is live: http://india.kameng.test" in out
    assert "Owner ivy@example.com created with password:" in out
    shop = Shop.objects.get(slug="india")
    assert shop.name == "India Store"
    with pytest.raises(Exception, match="already taken"):
        call_command("createshop", "india", "--owner", "ivy@example.com")


def test_slug_is_case_folded(db):
    created = services.shop_create(slug="  MyShop ", name="Mine", owner_email="m@example.com", owner_password=PASSWORD)
    assert created.shop.slug == "myshop"


def test_sample_catalog_is_ready_to_sell(db):
    from platform_core.catalog.models import SKU, Product
    from platform_core.inventory.stock import recount

    created = services.shop_create(slug="sample", name="Sample", owner_email="s@example.com",
                                   owner_password=PASSWORD, language="en")
    with tenant_context(created.shop):
        assert Product.objects.filter(type="card_key").count() >= 4
        assert Product.objects.filter(type="topup").exists()
        for sku in SKU.objects.filter(product__type="card_key"):
            assert sku.available_count == recount(sku.pk)["available"] > 0
    # shops asked to start empty stay empty
    empty = services.shop_create(slug="empty", name="Empty", owner_email="e2@example.com", owner_password=PASSWORD,
                                 sample_catalog=False)
    with tenant_context(empty.shop):
        assert not Product.objects.exists()
