"""Django's Redis cache, minus a new ``redis.Redis`` object per operation, and with a
per-request memory of what was read.

The stock client builds a fresh ``redis.Redis`` (and its ~130 response callbacks) for
every ``get``/``set``; a request touches the cache a few times (host routing, enabled
plugins), which cost ~3 ms of CPU per paid order. A client is thread-safe over its
connection pool, so one per pool is kept.

Inside :func:`request_scope` (one per web request, see ``RequestScopeMiddleware``) a
key read once is answered from memory for the rest of the request: a checkout asked
Redis for the shop's plan four times and for its enabled plugins twice. Any write
through this cache (set, add, delete, incr, …) forgets the whole memory, so a request
always reads back what it wrote. Outside a scope (tasks, commands) nothing is kept.

What every shop request reads first (its route, plugins, plan, fee rules: ``prefetch``)
is also remembered per process for ``KAMENG_CACHE_PROCESS_SECONDS`` (decision 0048)."""
from __future__ import annotations

import datetime
import decimal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

T = TypeVar("T")
_request_memory: ContextVar[dict | None] = ContextVar("kameng_request_memory", default=None)
#: functions shop -> cache key of what nearly every request of a shop reads (its enabled
#: plugins, its plan): fetched together as soon as the shop is known (prefetch_for_shop)
_per_shop_request_keys: list[Callable[[Any], str]] = []


def read_on_every_shop_request(key_of: Callable[[Any], str]) -> Callable[[Any], str]:
    """Register ``key_of(shop)``: the key is fetched with the others in one round trip
    when a request's shop is known, instead of one round trip each. The keys made for
    shops before (a module registering late, as in a test run) are made again."""
    _per_shop_request_keys.append(key_of)
    _made_shop_keys.clear()
    _keys_last_read_for_host.clear()
    return key_of


#: per process: host name -> the made keys its last request prefetched; the next request
#: for that host reads them with its route in one MGET (prefetch_route). A guess only:
#: if the route names another shop now, its own keys are fetched after.
_keys_last_read_for_host: dict[str, list[str]] = {}
_HOSTS_REMEMBERED = 10_000


#: per process: host name -> its route's made key; (schema, shop pk) -> the made keys
#: every request of the shop reads. Making a key asks the connection for its schema and
#: formats the prefix and version: ~5 µs a key, four keys a request, always the same.
_made_route_keys: dict[str, str] = {}
_made_shop_keys: dict[tuple[str, Any], list[str]] = {}


def prefetch_route(hostname: str, route_key: str) -> str | None:
    """Called by host routing, in whatever schema the connection is, before it reads
    ``route_key`` (a key of the public schema); returns its made key (None outside a
    request scope)."""
    from django.core.cache import cache

    if _request_memory.get() is None or not hasattr(cache, "prefetch_made"):
        return None
    made = _made_route_keys.get(hostname)
    if made is None:
        from django_tenants.utils import get_public_schema_name, schema_context

        if len(_made_route_keys) >= _HOSTS_REMEMBERED:
            _made_route_keys.clear()
        with schema_context(get_public_schema_name()):  # routes are the platform's keys
            made = _made_route_keys[hostname] = cache.make_and_validate_key(route_key)
    cache.prefetch_made([made, *_keys_last_read_for_host.get(hostname, ())])
    return made


def prefetch_for_shop(shop, hostname: str | None = None) -> None:
    """Called by host routing once the shop (and its schema) is set: whatever the
    route's read did not bring along is fetched now, in one MGET."""
    from django.core.cache import cache
    from django.db import connection

    if _per_shop_request_keys and _request_memory.get() is not None and hasattr(cache, "prefetch_made"):
        of_shop = (connection.schema_name, shop.pk)
        made = _made_shop_keys.get(of_shop)
        if made is None:
            if len(_made_shop_keys) >= _HOSTS_REMEMBERED:
                _made_shop_keys.clear()
            made = _made_shop_keys[of_shop] = [cache.make_and_validate_key(key_of(shop))
                                               for key_of in _per_shop_request_keys]
        cache.prefetch_made(made)
        if hostname is not None:
            if len(_keys_last_read_for_host) >= _HOSTS_REMEMBERED:
                _keys_last_read_for_host.clear()
            _keys_last_read_for_host[hostname] = made


def forget_now_and_on_commit(forget: Callable[[], None]) -> None:
    """For a write of what ``forget`` drops from the cache: now, so this transaction
    reads its own change; and on commit, so a reader that cached the old value between
    the write and the commit does not keep it."""
    from django.db import transaction

    forget()
    transaction.on_commit(forget)


@contextmanager
def request_scope() -> Iterator[None]:
    token = _request_memory.set({})
    try:
        yield
    finally:
        _request_memory.reset(token)


def remembered_for_request(key: tuple, compute: Callable[[], T]) -> T:
    """``compute()`` once per request (each time outside one). The memory is forgotten
    with every cache write, so derive only values whose sources are cached here and
    forgotten by writing to the cache (e.g. the enabled plugins)."""
    memory = _request_memory.get()
    if memory is None:
        return compute()
    try:
        return memory[key]
    except KeyError:
        value = memory[key] = compute()
        return value


def _forget_request_memory() -> None:
    memory = _request_memory.get()
    if memory:
        memory.clear()


#: what each write is to: its made key(s), from its arguments (None: every key)
_WRITTEN_KEYS: dict[str, Callable[[tuple], Any]] = {
    "add": lambda args: args[:1], "set": lambda args: args[:1], "touch": lambda args: args[:1],
    "delete": lambda args: args[:1], "incr": lambda args: args[:1], "set_many": lambda args: list(args[0]),
    "delete_many": lambda args: list(args[0]), "clear": lambda args: None,
}


def _forgetting(method_name: str):
    parent = getattr(RedisCacheClient, method_name)
    written_keys = _WRITTEN_KEYS[method_name]

    def write(self, *args, **kwargs):
        _forget_request_memory()
        try:
            return parent(self, *args, **kwargs)
        finally:  # after the write: a read of the old value meanwhile is not kept either
            _forget_recently_prefetched(written_keys(args) if args else None)

    write.__name__ = method_name
    return write


#: per process: a cached value's serialised bytes -> a function making a fresh copy of
#: it, for values that copy cheaply (see _copier): the route, the plan and the fee rules
#: every request reads were unpickled anew each time (~2.5 % of a web worker's CPU). The
#: same bytes always decode to the same value, so only the decoding is saved.
_copiers: dict[bytes, Callable[[], Any]] = {}
_COPIERS_KEPT = 1024
_IMMUTABLE = (str, int, float, bool, type(None), bytes, datetime.date, datetime.time, datetime.timedelta,
              decimal.Decimal, uuid.UUID)


def _flat(value) -> bool:
    """Immutable, or a list/tuple/dict of immutables (copied one level deep)."""
    if isinstance(value, _IMMUTABLE):
        return True
    if isinstance(value, (list, tuple)):
        return all(isinstance(item, _IMMUTABLE) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, _IMMUTABLE) and isinstance(v, _IMMUTABLE) for k, v in value.items())
    return False


def _copy_flat(value):
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value  # immutable, or a tuple of immutables


def _copier(value) -> Callable[[], Any] | None:
    """How to copy ``value`` as unpickling would, or None when that is not cheap and
    certain: flat values, dicts of flat values (e.g. NamedTuples), and model instances
    whose fields are flat and that hold no related or prefetched objects."""
    from django.db.models import Model

    from platform_core.db.rows import blank_instance

    if _flat(value):
        return lambda: _copy_flat(value)
    if isinstance(value, dict) and all(isinstance(k, _IMMUTABLE) and _flat(v) for k, v in value.items()):
        return _copying_dict(value)
    if isinstance(value, Model):
        fields = {k: v for k, v in value.__dict__.items() if k != "_state"}
        if value._state.__dict__.get("fields_cache") or not all(_flat(v) for v in fields.values()):
            return None
        model, db, adding = type(value), value._state.db, value._state.adding
        copy_fields = _copying_dict(fields)

        def copy_model():
            instance = blank_instance(model, adding=adding, db=db)
            instance.__dict__.update(copy_fields())
            return instance

        return copy_model
    return None


def _copying_dict(value: dict) -> Callable[[], dict]:
    """Copies of a dict of flat values: immutable values shared, lists and dicts copied
    (a shop's route holds ~30 fields, nearly all immutable: copied one by one they were
    ~1 % of a request)."""
    mutable = [key for key, item in value.items() if isinstance(item, (list, dict))]

    def copy() -> dict:
        made = dict(value)
        for key in mutable:
            made[key] = _copy_flat(made[key])
        return made

    return copy


def fresh_copies_of(value) -> Callable[[], Any] | None:
    """A function making a fresh copy of ``value`` each call (for a value kept per
    process and handed to each request), or None when ``value`` does not copy cheaply
    and certainly (see ``_copier``)."""
    return _copier(value)


def _decoded(serializer, raw: bytes):
    copier = _copiers.get(raw)
    if copier is not None:
        return copier()
    value = serializer.loads(raw)
    copier = _copier(value)
    if copier is None:
        return value
    if len(_copiers) >= _COPIERS_KEPT:
        _copiers.clear()
    _copiers[raw] = copier = _copier(serializer.loads(raw))  # its own pristine value: callers may change theirs
    return value


#: per process: made key -> (serialised value or None, monotonic time it expires), for
#: the keys prefetched at the start of every shop request (see ``prefetch``)
_recently_prefetched: dict[str, tuple[bytes | None, float]] = {}
_RECENTLY_PREFETCHED_KEPT = 10_000


def _forget_recently_prefetched(keys=None) -> None:
    """Forget ``keys`` (made keys; None: all) of what this process prefetched."""
    if keys is None:
        _recently_prefetched.clear()
    else:
        for key in keys:
            _recently_prefetched.pop(key, None)


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def get(self, key, default):
        memory = _request_memory.get()
        if memory is None:
            return super().get(key, default)
        try:
            raw = memory[key]
        except KeyError:
            raw = memory[key] = self.get_client(key).get(key)
        # kept serialised: every read gets its own copy, as from Redis
        return default if raw is None else _decoded(self._serializer, raw)

    def derived(self, key, build: Callable[[Any], T], also=None) -> T | None:
        """``build(value)`` for the value ``key`` (a made key) holds, made once per
        process for each value it holds (told apart by its stored bytes) and each
        ``also`` (anything else the result depends on); None when the key holds nothing.
        What ``build`` returns is shared by every later caller: it must not be changed."""
        memory = _request_memory.get()
        if memory is None:
            raw = self.get_client(key).get(key)
        else:
            try:
                raw = memory[key]
            except KeyError:
                raw = memory[key] = self.get_client(key).get(key)
        if raw is None:
            return None
        try:
            return _derived[key, raw, also]
        except KeyError:
            pass
        if len(_derived) >= _DERIVED_KEPT:
            _derived.clear()
        made = _derived[key, raw, also] = build(self._serializer.loads(raw))
        return made

    def prefetch(self, keys: list[str]) -> None:
        """Read ``keys`` (made keys) in one MGET into the request memory.

        With ``KAMENG_CACHE_PROCESS_SECONDS`` > 0 the process answers keys it prefetched
        less than that long ago from memory instead (decision 0048): every request of a
        shop prefetches the same few keys (its route, enabled plugins, plan), and the
        MGET was ~3 % of a web worker's CPU. A write through this process's cache forgets
        them at once; another process's write is seen within those seconds."""
        memory = _request_memory.get()
        wanted = [key for key in keys if key not in memory] if memory is not None else []
        if not wanted:
            return
        seconds = settings.KAMENG_CACHE_PROCESS_SECONDS
        if seconds > 0:
            now = time.monotonic()
            remembered = [_recently_prefetched.get(key) for key in wanted]
            if all(entry is not None and entry[1] > now for entry in remembered):
                memory.update(zip(wanted, (entry[0] for entry in remembered), strict=True))
                return
        values = self.get_client(wanted[0]).mget(wanted)
        memory.update(zip(wanted, values, strict=True))
        if seconds > 0:
            if len(_recently_prefetched) >= _RECENTLY_PREFETCHED_KEPT:
                _recently_prefetched.clear()
            expires = now + seconds
            _recently_prefetched.update((key, (value, expires)) for key, value in zip(wanted, values, strict=True))

    add = _forgetting("add")
    set = _forgetting("set")
    touch = _forgetting("touch")
    delete = _forgetting("delete")
    incr = _forgetting("incr")
    set_many = _forgetting("set_many")
    delete_many = _forgetting("delete_many")
    clear = _forgetting("clear")


#: per process: (made key, the value's stored bytes, also) -> what was built from it
#: (``derived``)
_derived: dict[tuple[str, bytes, Any], Any] = {}
_DERIVED_KEPT = 1024


class KamengRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

    def validate_key(self, key) -> None:
        # Django's check warns about keys memcached could not store (length, spaces,
        # control characters): Redis stores any key, and the scan ran on every read
        return None

    def prefetch(self, keys: list[str]) -> None:
        self.prefetch_made([self.make_and_validate_key(key) for key in keys])

    def derived(self, key: str, build: Callable[[Any], T], also=None) -> T | None:
        """``build(value)`` of ``key``'s cached value, made once per process for each
        value (see ``ReusingRedisCacheClient.derived``); None when nothing is cached."""
        return self._cache.derived(self.make_and_validate_key(key), build, also)

    def get_made(self, made_key: str, default=None):
        """``get`` for a key already made (``make_and_validate_key``)."""
        return self._cache.get(made_key, default)

    def prefetch_made(self, made_keys: list[str]) -> None:
        """:meth:`prefetch` for keys already made (``make_and_validate_key``)."""
        self._cache.prefetch(made_keys)


class RequestScopeMiddleware:
    """First in the chain: each request gets its own cache memory (see above)."""

    def __init__(self, get_response: Callable[[Any], Any]):
        self.get_response = get_response

    def __call__(self, request):
        with request_scope():
            return self.get_response(request)
