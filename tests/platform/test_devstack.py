"""The embedded PostgreSQL + Redis: start, reuse, stop; clear errors."""
from __future__ import annotations

import socket

import psycopg
import pytest
import redis

from platform_core import devstack


@pytest.fixture
def base(tmp_path):
    yield tmp_path / "stack"
    devstack.destroy(tmp_path / "stack")


def test_start_reuse_stop(base):
    pg_port, redis_port = devstack.free_port(), devstack.free_port()
    first = devstack.start(base, pg_port=pg_port, redis_port=redis_port, database="probe", fast_unsafe=True)
    with psycopg.connect(first.database_url.replace("postgres://", "postgresql://")) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "probe"
    assert redis.Redis.from_url(first.redis_url).ping()
    # a second start on the same directory reuses the running servers, even if asked for other ports
    again = devstack.start(base, pg_port=devstack.free_port(), redis_port=devstack.free_port(), database="probe")
    assert again == first
    devstack.stop(base)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(first.database_url.replace("postgres://", "postgresql://"), connect_timeout=2)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(first.redis_url, socket_connect_timeout=1).ping()
    # and starts again on the same data afterwards
    third = devstack.start(base, pg_port=pg_port, redis_port=redis_port, database="probe", fast_unsafe=True)
    assert third.pg_port == pg_port


def test_busy_port_gives_a_clear_error(base):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        with pytest.raises(devstack.DevstackError, match=f"port {busy} is already in use.*KAMENG_PG_PORT"):
            devstack.start(base, pg_port=busy, redis_port=devstack.free_port())
        with pytest.raises(devstack.DevstackError, match=f"port {busy} is already in use.*KAMENG_REDIS_PORT"):
            devstack.start_redis(base / "redis", busy)


def test_data_dir_that_is_not_a_cluster_is_refused(base):
    (base / "pg").mkdir(parents=True)
    (base / "pg" / "random.txt").write_text("not postgres")
    with pytest.raises(devstack.DevstackError, match="holds no PostgreSQL cluster"):
        devstack.start_postgres(base / "pg", devstack.free_port())


def test_stacks_of_killed_test_runs_are_reaped(tmp_path):
    """A test run killed before its clean-up leaves a PostgreSQL and a Redis running; the
    next run stops and deletes them, and leaves live runs' stacks and unmarked ones alone."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    orphan, live, unmarked = tmp_path / "kameng-test-orphan", tmp_path / "kameng-test-live", tmp_path / "kameng-test-x"
    services = devstack.start(orphan, pg_port=devstack.free_port(), redis_port=devstack.free_port(), fast_unsafe=True)
    (orphan / devstack.OWNER_FILE).write_text(dead.stdout.strip())
    live.mkdir()
    (live / devstack.OWNER_FILE).write_text(str(__import__("os").getppid()))
    unmarked.mkdir()
    try:
        assert devstack.reap_orphaned(tmp_path, "kameng-test-") == [orphan]
        assert not orphan.exists() and live.exists() and unmarked.exists()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(services.database_url.replace("postgres://", "postgresql://"), connect_timeout=2)
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(services.redis_url, socket_connect_timeout=1).ping()
    finally:
        devstack.destroy(orphan)
