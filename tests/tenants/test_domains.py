"""Custom domains route only after DNS TXT verification."""
from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from tenants import services
from tenants.models import Domain


def test_custom_domain_routes_only_once_verified(alpha, alice, shop_client, monkeypatch):
    client = shop_client(alpha, alice)
    assert client.post("/manage/domains/", {"domain": "Shop.Example.COM"}).status_code == 302
    domain = Domain.objects.get(domain="shop.example.com")
    assert domain.tenant_id == alpha.pk and not domain.is_verified
    page = client.get("/manage/domains/").content.decode()
    assert domain.txt_record_name in page and domain.txt_record_value in page
    assert Client(HTTP_HOST="shop.example.com").get("/").status_code == 404

    records: list[str] = []
    monkeypatch.setattr(services, "_txt_records", lambda name: list(records))
    monkeypatch.setattr(services.domain_verify, "__kwdefaults__", {"actor": None, "request": None,
                                                                    "resolver": lambda name: list(records)})
    client.post(f"/manage/domains/{domain.pk}/verify/")
    domain.refresh_from_db()
    assert not domain.is_verified and "does not contain" in domain.last_check_error
    assert Client(HTTP_HOST="shop.example.com").get("/").status_code == 404

    records.append(domain.txt_record_value)
    client.post(f"/manage/domains/{domain.pk}/verify/")
    domain.refresh_from_db()
    assert domain.is_verified
    home = Client(HTTP_HOST="shop.example.com").get("/")
    assert home.status_code == 200 and b"Alpha Shop" in home.content


@pytest.mark.parametrize("hostname", ["not a host", "localhost", "x.kameng.test", "kameng.test", "a" * 300 + ".com"])
def test_bad_custom_domains_are_refused(alpha, hostname):
    with pytest.raises(services.ShopCreationError):
        services.domain_add(shop=alpha, hostname=hostname)


def test_a_domain_belongs_to_one_shop(alpha, bravo):
    services.domain_add(shop=alpha, hostname="cards.example.net")
    with pytest.raises(services.ShopCreationError, match="already in use"):
        services.domain_add(shop=bravo, hostname="cards.example.net")


def test_other_shop_cannot_verify_my_domain(shop_client, alpha, bravo, bob):
    domain = services.domain_add(shop=alpha, hostname="mine.example.org")
    response = shop_client(bravo, bob).post(f"/manage/domains/{domain.pk}/verify/")
    assert response.status_code == 404


def test_verify_domain_command(alpha, capsys):
    domain = services.domain_add(shop=alpha, hostname="cmd.example.org")
    original = services.domain_verify

    def fake_verify(*, domain, actor=None, request=None, resolver=None):
        return original(domain=domain, resolver=lambda name: [domain.txt_record_value])

    services.domain_verify = fake_verify
    try:
        call_command("verify_domain", "cmd.example.org")
    finally:
        services.domain_verify = original
    assert "cmd.example.org: verified" in capsys.readouterr().out
    assert Domain.objects.get(pk=domain.pk).is_verified


def test_routed_shops_carry_the_current_primary_domain(alpha):
    """Routing caches the shop with its primary domain resolved (payment return and
    notify URLs are built from it on every checkout); moving the primary domain must
    reach every host of the shop at once."""
    from django.utils import timezone

    from tenants.middleware import ShopRoutingMiddleware
    from tenants.services import shop_url

    subdomain = Domain.objects.get(tenant=alpha, is_primary=True)
    custom = Domain.objects.create(tenant=alpha, domain="cards.example.com", is_primary=False,
                                   verified_at=timezone.now())
    other = Domain.objects.create(tenant=alpha, domain="keys.example.com", is_primary=False,
                                  verified_at=timezone.now())
    router = ShopRoutingMiddleware(lambda request: None)
    assert router.get_tenant(Domain, other.domain).__dict__["primary_domain"] == subdomain.domain
    routed = router.get_tenant(Domain, custom.domain)
    assert routed.pk == alpha.pk and routed.__dict__["primary_domain"] == subdomain.domain
    assert shop_url(router.get_tenant(Domain, custom.domain), "/x/").startswith(f"http://{subdomain.domain}")

    subdomain.is_primary = False
    subdomain.save()
    custom.is_primary = True
    custom.save()
    for host in (subdomain.domain, custom.domain, other.domain):
        assert shop_url(router.get_tenant(Domain, host), "/x/").startswith("http://cards.example.com")
