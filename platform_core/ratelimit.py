"""Fixed-window rate limits counted in Redis (shared by every web worker)."""
from django.core.cache import cache


def rate_limited(request, scope: str, *, limit: int, window_seconds: int, key: str | None = None) -> bool:
    """Count one hit for (scope, key or client IP); True once the limit is exceeded."""
    who = key or request.META.get("REMOTE_ADDR", "unknown")
    cache_key = f"ratelimit:{scope}:{who}"
    cache.add(cache_key, 0, window_seconds)
    try:
        hits = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, window_seconds)
        hits = 1
    return hits > limit
