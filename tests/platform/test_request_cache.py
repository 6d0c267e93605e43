"""The cache's per-request memory: a key read once in a request is answered from memory
for the rest of it, the request's own writes are read back at once, and outside a
request every read goes to Redis."""
from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from platform_core.cache import remembered_for_request, request_scope


def _other_process_sets(key: str, value) -> None:
    """Write as another web worker would: straight into Redis, past this process."""
    raw = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    raw.set(cache.make_and_validate_key(key), cache._cache._serializer.dumps(value))


def test_a_request_reads_a_key_once_and_sees_its_own_writes():
    cache.set("memo:plan", {"code": "basic"})
    with request_scope():
        assert cache.get("memo:plan") == {"code": "basic"}
        _other_process_sets("memo:plan", {"code": "business"})
        assert cache.get("memo:plan") == {"code": "basic"}  # remembered for this request
        cache.set("memo:other", 1)  # any write of its own forgets the memory
        assert cache.get("memo:plan") == {"code": "business"}
        cache.delete("memo:plan")
        assert cache.get("memo:plan") is None
        assert cache.get("memo:plan", "fallback") == "fallback"
        assert cache.incr("memo:other") == 2 and cache.get("memo:other") == 2
    _other_process_sets("memo:plan", {"code": "pro"})
    assert cache.get("memo:plan") == {"code": "pro"}  # no scope: straight to Redis


def test_every_read_gets_its_own_copy():
    cache.set("memo:rows", [{"slug": "sandbox"}])
    with request_scope():
        first = cache.get("memo:rows")
        first.append({"slug": "changed by the caller"})
        assert cache.get("memo:rows") == [{"slug": "sandbox"}]


def test_a_derived_value_is_built_once_per_stored_value_and_per_also():
    built = []

    def build(value):
        built.append(value)
        return ("built", tuple(value))

    cache.delete("memo:derived")
    assert cache.derived("memo:derived", build) is None and built == []  # nothing cached: nothing built
    cache.set("memo:derived", ["a"])
    first = cache.derived("memo:derived", build)
    with request_scope():
        assert cache.derived("memo:derived", build) is first  # shared, not built again
    assert built == [["a"]]
    _other_process_sets("memo:derived", ["b"])  # a new value: built from it
    assert cache.derived("memo:derived", build) == ("built", ("b",)) and built == [["a"], ["b"]]
    assert cache.derived("memo:derived", build, also="other") == ("built", ("b",)) and len(built) == 3
    with request_scope():  # a request reads the key once and builds from what it read
        assert cache.derived("memo:derived", build)[1] == ("b",)
        _other_process_sets("memo:derived", ["c"])
        assert cache.derived("memo:derived", build)[1] == ("b",)
        cache.set("memo:derived", ["d"])  # its own write: read back
        assert cache.derived("memo:derived", build)[1] == ("d",)


def test_a_missing_key_is_remembered_as_missing_until_a_write():
    cache.delete("memo:absent")
    with request_scope():
        assert cache.get("memo:absent") is None
        _other_process_sets("memo:absent", "late")
        assert cache.get("memo:absent") is None
        cache.add("memo:unrelated", 1)
        assert cache.get("memo:absent") == "late"


def test_scopes_do_not_share_memory():
    cache.set("memo:shared", "one")
    with request_scope():
        assert cache.get("memo:shared") == "one"
    _other_process_sets("memo:shared", "two")
    with request_scope():
        assert cache.get("memo:shared") == "two"


def test_derived_values_are_computed_once_per_request_and_again_after_a_write():
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert remembered_for_request(("derived",), compute) == 1
    assert remembered_for_request(("derived",), compute) == 2  # outside a request: every time
    with request_scope():
        assert remembered_for_request(("derived",), compute) == 3
        assert remembered_for_request(("derived",), compute) == 3
        cache.set("memo:config", "changed")
        assert remembered_for_request(("derived",), compute) == 4
    with request_scope():
        assert remembered_for_request(("derived",), compute) == 5


def test_enabling_a_plugin_takes_effect_in_the_next_request(alpha, alice):
    """Across requests nothing is remembered: the storefront shows a banner plugin's
    notice in the very next request after the owner saved it."""
    from django_tenants.utils import tenant_context

    from plugins.services import plugin_configure

    storefront = Client(HTTP_HOST="alpha.kameng.test")
    assert "Closed for the holidays" not in storefront.get("/").content.decode()
    with tenant_context(alpha):
        plugin_configure(shop=alpha, slug="store-notice", data={"message": "Closed for the holidays", "style": "info"}, enable=True)
    assert "Closed for the holidays" in storefront.get("/").content.decode()


@pytest.fixture
def requests_of_a_host(monkeypatch):
    """``request_for(host, shop)``: what a request's host routing reads (the route, then
    the shop's keys) and the shop's enabled plugins it then gets, with the Redis commands
    it sent."""
    from django.db import connection

    from platform_core.cache import prefetch_for_shop, prefetch_route
    from plugins.hooks import ENABLED_CACHE_KEY

    sent = []
    original = redis.Redis.execute_command
    monkeypatch.setattr(redis.Redis, "execute_command",
                        lambda client, *args, **kw: (sent.append(args[0]), original(client, *args, **kw))[1])

    def request_for(host, shop):
        sent.clear()
        with request_scope():
            connection.set_schema_to_public()
            prefetch_route(host, f"route:{host}")
            connection.set_tenant(shop)
            prefetch_for_shop(shop, host)
            return cache.get(ENABLED_CACHE_KEY), list(sent)

    yield request_for
    connection.set_schema_to_public()


def _enabled_rows(shop, rows) -> None:
    from django.db import connection

    from plugins.hooks import ENABLED_CACHE_KEY

    connection.set_tenant(shop)
    cache.set(ENABLED_CACHE_KEY, rows)
    connection.set_schema_to_public()


def test_a_host_reads_its_route_and_its_shops_keys_in_one_round_trip_and_follows_a_move(alpha, bravo, settings,
                                                                                       requests_of_a_host):
    """Host routing guesses the shop's keys from the host's last request; when the host
    now routes to another shop, that shop's own keys are read, never the old one's."""
    settings.KAMENG_CACHE_PROCESS_SECONDS = 0  # every request asks Redis
    for shop in (alpha, bravo):
        _enabled_rows(shop, [f"{shop.slug} rows"])
    request_for = requests_of_a_host
    assert request_for("shop.example.org", alpha) == (["alpha rows"], ["MGET", "MGET"])  # nothing to guess yet
    assert request_for("shop.example.org", alpha) == (["alpha rows"], ["MGET"])
    assert request_for("shop.example.org", bravo) == (["bravo rows"], ["MGET", "MGET"])  # the domain moved
    assert request_for("shop.example.org", bravo) == (["bravo rows"], ["MGET"])


def test_a_key_registered_after_a_shop_was_routed_is_read_with_the_others(alpha, settings, requests_of_a_host,
                                                                           monkeypatch):
    """A module that registers its key late (after a request of the shop made the
    shop's keys) still has it fetched with the shop's others, in the same MGET."""
    from platform_core import cache as kameng_cache

    settings.KAMENG_CACHE_PROCESS_SECONDS = 0
    monkeypatch.setattr(kameng_cache, "_per_shop_request_keys", list(kameng_cache._per_shop_request_keys))
    request_for = requests_of_a_host
    request_for("late.example.org", alpha)  # the shop's keys made without the late one
    kameng_cache.read_on_every_shop_request(lambda shop: "memo:late")
    from django.db import connection

    connection.set_tenant(alpha)
    cache.set("memo:late", "fetched with the others")
    connection.set_schema_to_public()
    sent = []
    original = redis.Redis.execute_command
    monkeypatch.setattr(redis.Redis, "execute_command",
                        lambda client, *args, **kw: (sent.append(args), original(client, *args, **kw))[1])
    with request_scope():
        kameng_cache.prefetch_route("late.example.org", "route:late.example.org")
        connection.set_tenant(alpha)
        kameng_cache.prefetch_for_shop(alpha, "late.example.org")
        fetched = [key for command in sent if command[0] == "MGET" for key in command[1:]]
        assert any(key.endswith("memo:late") for key in fetched), fetched
        sent.clear()
        assert cache.get("memo:late") == "fetched with the others" and sent == []  # no read of its own
    connection.set_schema_to_public()


@pytest.fixture
def process_memory(settings):
    from platform_core import cache as kameng_cache

    kameng_cache._recently_prefetched.clear()
    settings.KAMENG_CACHE_PROCESS_SECONDS = 60
    yield settings
    kameng_cache._recently_prefetched.clear()


def test_a_process_answers_what_every_request_reads_from_memory_until_it_writes_it(alpha, process_memory,
                                                                                   requests_of_a_host):
    from django.db import connection

    from plugins.hooks import ENABLED_CACHE_KEY

    request_for = requests_of_a_host
    _enabled_rows(alpha, ["sandbox"])
    assert request_for("alpha.example.org", alpha) == (["sandbox"], ["MGET", "MGET"])
    assert request_for("alpha.example.org", alpha) == (["sandbox"], [])  # no round trip at all
    # another web process's write: this one keeps what it read, for at most its seconds
    connection.set_tenant(alpha)
    _other_process_sets(ENABLED_CACHE_KEY, ["sandbox", "wallet"])
    connection.set_schema_to_public()
    assert request_for("alpha.example.org", alpha) == (["sandbox"], [])
    # a write of another key through this process keeps the memory (e.g. the mailer's wake-up)
    cache.add("orders:mailer-woken", 1, 30)
    assert request_for("alpha.example.org", alpha) == (["sandbox"], [])
    # a write of a remembered key through this process is read back by the next request
    _enabled_rows(alpha, ["wallet"])
    assert request_for("alpha.example.org", alpha) == (["wallet"], ["MGET"])
    assert request_for("alpha.example.org", alpha) == (["wallet"], [])
    cache.clear()  # and a clear forgets everything
    assert request_for("alpha.example.org", alpha)[1] == ["MGET"]


def test_what_a_process_remembers_expires_after_its_seconds(alpha, process_memory, requests_of_a_host):
    import time

    from django.db import connection

    from plugins.hooks import ENABLED_CACHE_KEY

    process_memory.KAMENG_CACHE_PROCESS_SECONDS = 0.3
    request_for = requests_of_a_host
    _enabled_rows(alpha, ["sandbox"])
    assert request_for("alpha.example.org", alpha)[0] == ["sandbox"]
    connection.set_tenant(alpha)
    _other_process_sets(ENABLED_CACHE_KEY, ["wallet"])
    connection.set_schema_to_public()
    time.sleep(0.4)
    assert request_for("alpha.example.org", alpha) == (["wallet"], ["MGET"])


def test_a_suspension_by_another_process_reaches_the_storefront_within_the_seconds(alpha, process_memory):
    """The route a process remembers carries the shop's status: a shop suspended
    elsewhere is refused here once the seconds have passed (the route is re-read)."""
    import time

    from django.db import connection

    from tenants.middleware import route_cache_key

    process_memory.KAMENG_CACHE_PROCESS_SECONDS = 0.3
    storefront = Client(HTTP_HOST="alpha.kameng.test")
    assert storefront.get("/").status_code == 200
    connection.set_schema_to_public()  # routes are kept in the public schema's keys
    suspended = cache.get(route_cache_key("alpha.kameng.test"))
    suspended.status = "suspended"
    _other_process_sets(route_cache_key("alpha.kameng.test"), suspended)
    time.sleep(0.4)
    assert storefront.get("/").status_code == 403


def test_any_key_redis_can_hold_is_stored_without_memcached_warnings(recwarn):
    long_key = "route:" + "shop-" * 60 + " with spaces and 中文"  # > 250 characters, spaces: fine in Redis
    cache.set(long_key, "stored")
    assert cache.get(long_key) == "stored"
    cache.delete(long_key)
    assert cache.get(long_key) is None
    assert not [w for w in recwarn.list if w.category.__name__ == "CacheKeyWarning"]


def test_values_decoded_once_per_process_still_come_as_copies_of_their_own(alpha):
    from billing.models import Plan
    from platform_core import cache as kameng_cache
    from platform_core.payments.selectors import FeeRule

    plan = Plan(id=7, code="pro", name="Pro", features=["plugins.payment", "api"])
    values = {"memo:shop": alpha, "memo:plan": plan, "memo:rules": {"sandbox": FeeRule(30, 100, True)},
              "memo:nested": [{"slug": "sandbox", "settings": {"a": 1}}]}
    for key, value in values.items():
        cache.set(key, value)
    kameng_cache._copiers.clear()
    reads = []
    for _ in range(3):
        with request_scope():
            reads.append({key: cache.get(key) for key in values})
    first, second, third = reads
    assert second["memo:shop"].pk == alpha.pk and second["memo:shop"].schema_name == alpha.schema_name
    assert not second["memo:shop"]._state.adding and second["memo:plan"].features == ["plugins.payment", "api"]
    assert second["memo:rules"] == {"sandbox": FeeRule(30, 100, True)}
    assert len(kameng_cache._copiers) == 3  # the nested list of dicts is unpickled every time
    # what one request does to its copy, another never sees
    first["memo:shop"].name = "changed"
    first["memo:plan"].features.append("changed")
    first["memo:rules"]["other"] = FeeRule(0, 0, False)
    first["memo:nested"][0]["settings"]["a"] = 2
    second["memo:shop"].name = "changed too"
    for key in values:
        assert third[key] is not second[key] and third[key] is not first[key]
    assert third["memo:shop"].name == alpha.name and third["memo:plan"].features == ["plugins.payment", "api"]
    assert set(third["memo:rules"]) == {"sandbox"} and third["memo:nested"][0]["settings"] == {"a": 1}
    # another process's write is new bytes: read as written
    _other_process_sets("memo:rules", {"sandbox": FeeRule(0, 500, False)})
    with request_scope():
        assert cache.get("memo:rules") == {"sandbox": FeeRule(0, 500, False)}


def test_a_write_forgets_the_cached_value_now_and_again_on_commit(db, django_capture_on_commit_callbacks):
    from platform_core.cache import forget_now_and_on_commit

    cache.set("memo:rule", "old")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        forget_now_and_on_commit(lambda: cache.delete("memo:rule"))
        assert cache.get("memo:rule") is None  # this transaction reads its own change
        cache.set("memo:rule", "old")  # a reader caching the old value before the commit…
    assert len(callbacks) == 1
    assert cache.get("memo:rule") is None  # …does not keep it past the commit
