"""The benchmarks' CPU accounting counts a process tree, ended descendants included."""
from __future__ import annotations

import subprocess
import sys

from tests.bench._harness import tree_cpu_seconds

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def test_cpu_of_a_process_tree_includes_children_that_already_ended():
    # the parent burns 0.2 s, runs a child that burns 0.3 s and ends, then waits to be measured
    script = (BURN.format(s=0.2) + "import subprocess, sys\n"
              f"subprocess.run([sys.executable, '-c', {BURN.format(s=0.3)!r}], check=True)\n"
              "print('ready', flush=True)\ntime.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        measured = tree_cpu_seconds(parent.pid)
        assert 0.5 <= measured < 5, measured
        assert tree_cpu_seconds(parent.pid) >= measured  # cumulative, never goes back
    finally:
        parent.kill()
        parent.wait()


def test_a_process_that_is_gone_counts_nothing():
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    assert done.wait() == 0
    assert tree_cpu_seconds(done.pid) == 0


def test_checkout_ab_refuses_a_base_that_is_not_a_revision():
    from contextlib import ExitStack

    import pytest

    from tests.bench.bench_checkout_ab import _base_worktree

    with ExitStack() as stack, pytest.raises(SystemExit, match="is not a revision"):
        _base_worktree("no-such-revision-of-kameng", stack)


def test_checkout_ab_serves_the_base_from_a_worktree_it_removes_afterwards():
    from contextlib import ExitStack
    from pathlib import Path

    from tests.bench.bench_checkout_ab import _base_worktree, _git

    with ExitStack() as stack:
        path, commit = _base_worktree("HEAD", stack)
        assert (Path(path) / "platform_core" / "db" / "rows.py").is_file()
        assert _git("rev-parse", "HEAD").startswith(commit) and len(commit) == 9
    assert not Path(path).exists() and path not in _git("worktree", "list")


def test_the_lock_wait_sampler_counts_connections_waiting_for_a_lock(django_db_setup, django_db_blocker):
    import threading
    import time

    import psycopg
    from django.db import connection

    from tests.bench._harness import LockWaitSampler

    params = connection.settings_dict
    url = (f"postgresql://{params['USER']}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/"
           f"{params['NAME']}")
    with django_db_blocker.unblock(), psycopg.connect(url, autocommit=True) as holder, \
            psycopg.connect(url, autocommit=True) as waiter:
        holder.execute("SELECT pg_advisory_lock(4242)")
        blocked = threading.Thread(target=lambda: waiter.execute("SELECT pg_advisory_lock(4242)"))
        with LockWaitSampler(url, interval=0.01) as sampler:
            blocked.start()
            deadline = time.monotonic() + 10
            while 1 not in sampler.samples and time.monotonic() < deadline:
                time.sleep(0.01)
            holder.execute("SELECT pg_advisory_unlock(4242)")
            blocked.join(timeout=10)
            waited = len(sampler.samples)
            while len(sampler.samples) < waited + 3:  # and then nobody waits
                time.sleep(0.01)
        waiter.execute("SELECT pg_advisory_unlock(4242)")
    assert 1 in sampler.samples and sampler.samples[-1] == 0
    assert 0 < sampler.mean < 1
