"""The ``kameng`` command.

    kameng up                 everything for development: embedded PostgreSQL + Redis,
                              migrate, demo shop, web + worker + beat (Ctrl-C stops all)
    kameng migrate            migrate public + every shop schema (skips current ones)
    kameng createshop SLUG --owner EMAIL [--name N] [--password P]
    kameng verify-domain DOMAIN | --all
    kameng rotate-keys        re-wrap shop data keys under the current master key
    kameng web | worker | beat   one process each (containers run these)
    kameng sandbox            the bundled sandbox payment gateway (port SANDBOX_PORT, 8001)
    kameng importkeys --shop S --product P FILE   import card keys with a progress bar
    kameng devstack start|stop|status
    kameng manage ARGS...     any Django management command
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DJANGO_COMMANDS = {
    "migrate": "kameng_migrate",
    "createshop": "createshop",
    "verify-domain": "verify_domain",
    "rotate-keys": "rotate_keys",
    "importkeys": "importkeys",
}


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")
    import django

    django.setup()


def _call(command: str, *args: str) -> None:
    from django.core.management import execute_from_command_line

    execute_from_command_line(["kameng", command, *args])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "up":
        return Supervisor().run()
    if command == "devstack":
        return devstack_command(rest)
    if command in ("web", "worker", "beat", "sandbox"):
        from platform_core.webserver import UnknownServer

        try:
            os.execvp(*_process_command(command))
        except UnknownServer as exc:
            print(f"kameng: {exc}", file=sys.stderr)
            return 2
    if command == "manage":
        _setup_django()
        _call(*rest)
        return 0
    if command in DJANGO_COMMANDS:
        _setup_django()
        _call(DJANGO_COMMANDS[command], *rest)
        return 0
    print(f"kameng: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


def _process_command(kind: str) -> tuple[str, list[str]]:
    bin_dir = Path(sys.executable).parent
    if kind == "web":
        from platform_core.webserver import web_command  # noqa: PLC0415

        args = web_command(bin_dir)
    elif kind == "worker":
        args = [str(bin_dir / "celery"), "-A", "platform_core", "worker", "--loglevel", "INFO",
                "--concurrency", os.environ.get("CELERY_CONCURRENCY", "2"), "--without-gossip", "--without-mingle"]
    elif kind == "sandbox":
        state_dir = Path(os.environ.get("KAMENG_STATE_DIR", ROOT / ".kameng"))
        args = [sys.executable, "-m", "sandbox_gateway", "--port", os.environ.get("SANDBOX_PORT", "8001"),
                "--db", os.environ.get("SANDBOX_DB", str(state_dir / "sandbox-gateway.sqlite3"))]
    else:
        from platform_core.settings import CELERY_BEAT_SCHEDULE_FILENAME  # noqa: PLC0415

        args = [str(bin_dir / "celery"), "-A", "platform_core", "beat", "--loglevel", "INFO",
                "--schedule", os.environ.get("CELERY_BEAT_SCHEDULE", CELERY_BEAT_SCHEDULE_FILENAME)]
    return args[0], args


def devstack_command(rest: list[str]) -> int:
    from platform_core import devstack

    base = Path(os.environ.get("KAMENG_DEVSTACK_DIR", ROOT / ".kameng"))
    action = rest[0] if rest else "status"
    if action == "start":
        services = devstack.start(base, pg_port=int(os.environ.get("KAMENG_PG_PORT", devstack.DEFAULT_PG_PORT)),
                                  redis_port=int(os.environ.get("KAMENG_REDIS_PORT", devstack.DEFAULT_REDIS_PORT)))
        print(f"DATABASE_URL={services.database_url}\nREDIS_URL={services.redis_url}")
    elif action == "stop":
        devstack.stop(base)
        print("embedded PostgreSQL and Redis stopped")
    elif action == "status":
        pg = devstack._read_postmaster(base / "pg")
        print(f"PostgreSQL: {'running on port %d' % pg[1] if pg else 'stopped'} ({base / 'pg'})")
        pidfile = base / "redis" / "redis.pid"
        alive = pidfile.exists() and devstack._pid_alive(int(pidfile.read_text() or 0))
        print(f"Redis: {'running' if alive else 'stopped'} ({base / 'redis'})")
    else:
        print("usage: kameng devstack start|stop|status", file=sys.stderr)
        return 2
    return 0


class Supervisor:
    """``kameng up``: prepare everything, then run web, worker and beat together."""

    def __init__(self):
        self.children: dict[str, subprocess.Popen] = {}
        self.stopping = False
        self.owns_devstack = not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL")
        self.state_dir = Path(os.environ.get("KAMENG_STATE_DIR", ROOT / ".kameng"))
        self.lock_file = None

    def say(self, message: str) -> None:
        print(f"kameng: {message}", flush=True)

    def run(self) -> int:
        from platform_core import devstack

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        port = int(os.environ.get("PORT", "8000"))
        if not devstack.port_is_free(port):
            self.say(f"port {port} is already in use. Stop what uses it, or run with PORT=<another port>.")
            return 1
        sandbox_port = int(os.environ.get("SANDBOX_PORT", "8001"))
        if not devstack.port_is_free(sandbox_port):
            self.say(f"port {sandbox_port} (sandbox payment gateway) is already in use. "
                     "Stop what uses it, or run with SANDBOX_PORT=<another port>.")
            return 1
        try:
            self.say("starting embedded PostgreSQL and Redis…" if self.owns_devstack else "using DATABASE_URL/REDIS_URL")
            try:
                _setup_django()
            except devstack.DevstackError as exc:
                self.say(str(exc))
                return 1
            self.say("migrating…")
            _call("kameng_migrate", "--verbosity", "1")
            logins = self._ensure_demo()
            from django.db import connections

            connections.close_all()
            # from here on Ctrl-C / SIGTERM stop the children gracefully (set after the
            # migration step, whose forked workers must keep the default handlers)
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
            from platform_core.webserver import UnknownServer

            try:
                commands = {kind: _process_command(kind)[1] for kind in ("web", "worker", "beat", "sandbox")}
            except UnknownServer as exc:
                self.say(str(exc))
                return 1
            for kind, args in commands.items():
                self.children[kind] = subprocess.Popen(args, env=os.environ.copy(), cwd=ROOT)
            self._announce(port, logins)
            return self._wait()
        finally:
            self._shutdown()

    def _lock(self) -> None:
        self.lock_file = open(self.state_dir / "run.lock", "a+")
        try:
            fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock_file.seek(0)
            holder = self.lock_file.read().strip() or "another process"
            print(f"kameng: Kameng is already running from {ROOT} (pid {holder}). Stop it first "
                  f"(Ctrl-C in its terminal), or use another checkout.", file=sys.stderr)
            raise SystemExit(1) from None
        self.lock_file.seek(0)
        self.lock_file.truncate()
        self.lock_file.write(str(os.getpid()))
        self.lock_file.flush()

    def _ensure_demo(self) -> dict[str, str]:
        from platform_core.demo import demo_ensure

        return demo_ensure(self.state_dir)

    def _announce(self, port: int, logins: dict[str, str]) -> None:
        from django.conf import settings

        domain = settings.PLATFORM_DOMAIN
        lines = [
            "",
            "Kameng is running.",
            f"  Platform:          http://{domain}:{port}/            (sign up a new shop here)",
            f"  Platform console:  http://{domain}:{port}/console/    {logins['admin_email']} / {logins['admin_password']}",
            f"  Demo shop:         http://demo.{domain}:{port}/",
            f"  Demo shop console: http://demo.{domain}:{port}/manage/ {logins['owner_email']} / {logins['owner_password']}",
            f"  API docs:          http://{domain}:{port}/api/docs/ and http://demo.{domain}:{port}/api/docs/",
            f"  Health:            http://{domain}:{port}/healthz",
            f"  Sandbox payments:  {settings.KAMENG_SANDBOX_URL}/   (the test gateway's Pay / Fail pages)",
            f"  E-mails are written to {self.state_dir / 'mail'}",
            "Press Ctrl-C to stop everything.",
            "",
        ]
        print("\n".join(lines), flush=True)

    def _wait(self) -> int:
        while not self.stopping:
            for kind, child in self.children.items():
                code = child.poll()
                if code is not None:
                    self.say(f"{kind} exited with status {code}; stopping everything.")
                    return code or 1
            time.sleep(0.5)
        return 0

    def _on_signal(self, signum, frame):
        self.stopping = True

    def _shutdown(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if self.owns_devstack and self.children is not None:
            from platform_core import devstack

            devstack.stop(Path(os.environ.get("KAMENG_DEVSTACK_DIR", self.state_dir)))
            self.say("stopped web, worker, beat, PostgreSQL and Redis.")
        if self.lock_file:
            self.lock_file.close()


if __name__ == "__main__":
    sys.exit(main())
