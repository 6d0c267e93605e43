"""Migrating many shop schemas: skip the ones already current, run the rest in
parallel with a progress bar.

A no-op ``migrate_schemas`` costs ~0.2 s per schema because Django loads the
migration graph and plans for each one; 1,000 shops would wait minutes for nothing.
Here one query per hundred schemas reads every ``django_migrations`` table, and only
schemas missing a migration of the graph are migrated (in forked worker processes).
Used through ``GET_EXECUTOR_FUNCTION`` by ``migrate_schemas`` / ``kameng migrate``.
"""
from __future__ import annotations

import functools
import multiprocessing
import sys

from django.conf import settings
from django.db import connection, connections
from django.db.migrations.loader import MigrationLoader
from django_tenants.migration_executors import get_executor
from django_tenants.migration_executors.base import MigrationExecutor, run_migrations

CHUNK = 100


def graph_migrations() -> set[tuple[str, str]]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return set(loader.graph.nodes)


def applied_by_schema(schemas: list[str]) -> dict[str, set[tuple[str, str]]]:
    """Every schema's applied migrations, read in a few UNION ALL queries."""
    from tenants.schema import quote, quote_literal

    applied: dict[str, set[tuple[str, str]]] = {name: set() for name in schemas}
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [schemas])
        existing = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'django_migrations' "
            "AND table_schema = ANY(%s)", [existing],
        )
        with_table = [row[0] for row in cursor.fetchall()]
        for start in range(0, len(with_table), CHUNK):
            chunk = with_table[start:start + CHUNK]
            query = " UNION ALL ".join(
                f"SELECT {quote_literal(name)}, app, name FROM {quote(name)}.django_migrations" for name in chunk
            )
            cursor.execute(query)
            for schema, app, name in cursor.fetchall():
                applied[schema].add((app, name))
    return applied


def stale_schemas(schemas: list[str]) -> list[str]:
    wanted = graph_migrations()
    applied = applied_by_schema(schemas)
    return [name for name in schemas if not wanted <= applied[name]]


def _default_signals() -> None:
    """Workers must not inherit a parent's handlers (``kameng up`` traps SIGTERM to
    stop its children gracefully; a worker that ignores SIGTERM never terminates)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _migrate_one(args, options, codename, schema_name):
    run_migrations(args, {**options, "verbosity": 0}, codename, schema_name, allow_atomic=False)
    return schema_name


class SmartExecutor(MigrationExecutor):
    codename = "smart"

    def _targeted(self) -> bool:
        """Explicit targets, fakes and plans go through the standard executor untouched."""
        o = self.options
        return bool(o.get("app_label") or o.get("migration_name") or o.get("fake") or o.get("fake_initial")
                    or o.get("plan") or o.get("check_unapplied") or o.get("prune"))

    def run_migrations(self, tenants=None):
        tenants = list(tenants or [])
        if self._targeted():
            return get_executor("standard")(self.args, self.options).run_migrations(tenants=tenants)
        public = self.PUBLIC_SCHEMA_NAME
        if public in tenants:
            run_migrations(self.args, self.options, self.codename, public)
            tenants.remove(public)
        if not tenants:
            return
        stale = stale_schemas(tenants)
        verbose = int(self.options.get("verbosity", 1)) >= 1
        if verbose:
            sys.stdout.write(f"{len(tenants) - len(stale)} of {len(tenants)} shop schemas already current; "
                             f"migrating {len(stale)}.\n")
        if not stale:
            return
        self._run_parallel(stale, progress=verbose)

    def _run_parallel(self, schemas: list[str], progress: bool) -> None:
        from tqdm import tqdm

        processes = max(1, int(getattr(settings, "TENANT_MULTIPROCESSING_MAX_PROCESSES", 2)))
        # output streams cannot cross into forked workers (and workers stay quiet anyway)
        options = {k: v for k, v in self.options.items() if k not in ("stdout", "stderr")}
        job = functools.partial(_migrate_one, self.args, options, self.codename)

        def progress_bar():
            # no monitor thread: a thread alive at fork time can leave a child deadlocked
            tqdm.monitor_interval = 0
            return tqdm(total=len(schemas), unit="shop", desc="migrating", disable=not progress, file=sys.stderr)

        if processes == 1 or len(schemas) == 1:
            with progress_bar() as bar:
                for name in schemas:
                    job(name)
                    bar.update()
            connection.set_schema_to_public()
            return
        connections.close_all()  # forked children must not share our socket
        context = multiprocessing.get_context("fork")
        # fork the workers before anything else can start a thread in this process
        pool = context.Pool(processes=processes, initializer=_default_signals)
        try:
            with progress_bar() as bar:
                for _ in pool.imap_unordered(job, schemas):
                    bar.update()
            pool.close()  # all done: let the workers finish instead of terminating them
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()


def get_smart_executor(codename=None):
    """``GET_EXECUTOR_FUNCTION``: our executor unless one is asked for by name."""
    if codename in (None, "", "standard", "smart"):
        return SmartExecutor
    return get_executor(codename)
