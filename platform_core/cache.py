"""Django's Redis cache, minus a new ``redis.Redis`` object per operation.

The stock client builds a fresh ``redis.Redis`` (and its ~130 response callbacks) for
every ``get``/``set``; a request touches the cache a few times (host routing, enabled
plugins), which cost ~3 ms of CPU per paid order. A client is thread-safe over its
connection pool, so one per pool is kept."""
from __future__ import annotations

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


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


class KamengRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
