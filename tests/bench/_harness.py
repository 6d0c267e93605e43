"""Shared plumbing for the benchmarks: a throw-away devstack, Django set-up,
percentiles, the ``BENCH`` output format, progress on stderr, and populating the
database with many shops."""
from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

SETTINGS = "tests.bench.settings_bench"
ROOT_DIR = Path(__file__).resolve().parent.parent.parent

# one clock for a benchmark and the child processes it starts
os.environ.setdefault("BENCH_T0", repr(time.time()))
_T0 = float(os.environ["BENCH_T0"])
# before anything imports platform_core (its Celery module defaults the variable)
os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("BENCH_SETTINGS_MODULE", SETTINGS)


def progress(message: str) -> None:
    print(f"[{time.time() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def emit(name: str, value: float | int, unit: str) -> None:
    """One figure, exactly ``BENCH <bench>.<figure>=<number> <unit>``."""
    if isinstance(value, int):
        number = str(value)
    elif abs(value) >= 100:
        number = f"{value:.1f}"
    elif abs(value) >= 1:
        number = f"{value:.2f}"
    else:
        number = f"{value:.3f}"
    print(f"BENCH {name}={number} {unit}", flush=True)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _terminate(signum, frame):  # SIGTERM -> SystemExit, so `finally` blocks stop the servers
    raise SystemExit(128 + signum)


@contextmanager
def devstack():
    """Start a fresh embedded PostgreSQL + Redis in a temp dir on free ports, export the
    environment the settings read, and stop and delete everything afterwards — also on
    failure, Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, _terminate)
    from platform_core import devstack as ds

    base = Path(tempfile.mkdtemp(prefix="kameng-bench-"))
    progress(f"starting a throw-away PostgreSQL + Redis in {base}")
    try:
        services = ds.start(base, pg_port=ds.free_port(), redis_port=ds.free_port(), fast_unsafe=True)
        os.environ.update({
            "DATABASE_URL": services.database_url,
            "REDIS_URL": services.redis_url,
            "KAMENG_DEVSTACK_DIR": str(base),
            "KAMENG_STATE_DIR": str(base),
            "KAMENG_ENV": "test",
        })
        yield base
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may never have been configured
            pass
        ds.stop(base)
        shutil.rmtree(base, ignore_errors=True)
        progress("throw-away servers stopped and removed")


def setup_django() -> None:
    import django

    django.setup()


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process of a benchmark: it inherits DATABASE_URL, REDIS_URL,
    KAMENG_DEVSTACK_DIR, KAMENG_STATE_DIR, KAMENG_ENV, DJANGO_SETTINGS_MODULE and BENCH_T0,
    so it uses the same servers and secrets instead of starting its own."""
    env = dict(os.environ)
    env.update(extra)
    return env


def migrate_everything() -> None:
    """``kameng migrate``: public + template + shops + the spare pool."""
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("kameng_migrate", verbosity=0)
    progress(f"kameng_migrate done in {time.perf_counter() - started:.1f} s")


def bench_owners(count: int):
    """Merchants to own the benchmark shops (unusable passwords: no hashing cost)."""
    from tenants.models import Merchant

    existing = list(Merchant.objects.filter(email__endswith="@bench.kameng.test").order_by("id"))
    for index in range(len(existing), count):
        existing.append(Merchant.objects.create_user(f"owner{index:04d}@bench.kameng.test", None,
                                                     name=f"Bench owner {index}"))
    return existing[:count]


def populate_shops(count: int, *, prefix: str = "pop", shops_per_owner: int = 10) -> float:
    """Create ``count`` real shops through ``shop_create`` (the pool is not refilled in
    between, so each one is cloned from the template on the spot). Returns seconds."""
    from django.db import connection

    from tenants.models import Shop
    from tenants.services import shop_create

    owners = bench_owners(max(1, math.ceil(count / shops_per_owner)))
    started = time.perf_counter()
    for index in range(count):
        shop_create(slug=f"{prefix}{index:05d}", name=f"Bench shop {index}", owner=owners[index // shops_per_owner],
                    language="en", sample_catalog=False)
        done = index + 1
        if done % 100 == 0 or done == count:
            elapsed = time.perf_counter() - started
            progress(f"populated {done}/{count} shops ({elapsed:.1f} s, {done / elapsed:.0f} shops/s)")
    connection.set_schema_to_public()
    total = Shop.objects.real().count()
    progress(f"{total} shops on the database")
    return time.perf_counter() - started


def _proc_stat(pid: int) -> tuple[int, list[str]] | None:
    """(parent pid, the fields after the command name) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds (user + system) of a process and every descendant: live ones from
    /proc, ended ones through their parents' reaped-children totals. Linux only."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _proc_stat(int(entry))) is not None:
            parents[int(entry)], stats[int(entry)] = found
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    # utime, stime, cutime, cstime are fields 14-17 of /proc/<pid>/stat (11-14 here)
    return sum(sum(int(v) for v in stats[pid][11:15]) for pid in tree if pid in stats) / tick


class LockWaitSampler:
    """How many of the database's client connections wait for another transaction's lock
    (a row, a key: ``wait_event_type = 'Lock'``), sampled from ``pg_stat_activity`` every
    ``interval`` seconds on a thread of its own while the block runs. ``mean`` is the
    average over the samples: a hot row shows here before anywhere else (decision 0049),
    and the samples cost the database a few queries per second."""

    def __init__(self, database_url: str, *, interval: float = 0.05):
        self.url = database_url.replace("postgres://", "postgresql://", 1)
        self.interval = interval
        self.samples: list[int] = []
        self._stop = None
        self._thread = None

    def __enter__(self) -> LockWaitSampler:
        import threading

        import psycopg

        connection = psycopg.connect(self.url, autocommit=True)
        self._stop = threading.Event()

        def sample() -> None:
            with connection:
                while not self._stop.is_set():
                    self.samples.append(connection.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                        "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'").fetchone()[0])
                    self._stop.wait(self.interval)

        self._thread = threading.Thread(target=sample, name="lock-wait-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else 0.0
