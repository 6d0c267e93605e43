"""Real concurrency for tests: many threads, each on its own database connection."""
from __future__ import annotations

import threading

from django.db import connections


def all_at_once(count: int, work, *, timeout: float = 120) -> list:
    """Run ``work(n)`` on ``count`` threads released together by a barrier; returns each
    result (or the exception it raised) in order. Every thread closes its connections."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(n):
        try:
            barrier.wait()
            results[n] = work(n)
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            results[n] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results
