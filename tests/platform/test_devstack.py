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
