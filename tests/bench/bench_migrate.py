"""migrate: ``migrate_schemas`` over 1,000 shop schemas.

The benchmark writes a throw-away tenant app, ``kameng_bench_app``, into a temp dir
with two migrations modules: v1 holds ``0001_initial`` (one small model), v2 holds
0001 + ``0002_priority`` (AddField with a default + AddIndex). One devstack, three
processes:

* this one starts the throw-away PostgreSQL + Redis, writes the app, runs the two
  phases below in child processes (sharing the server through DATABASE_URL etc.) and
  stops everything at the end, also on failure;
* ``--phase populate`` (migrations v1): ``kameng migrate``, 1,000 shops through
  ``shop_create``, then ``migrate_schemas --tenant`` with nothing pending
                                            -> migrate.noop_s (median of 3), and the
  whole ``kameng migrate`` command with nothing pending -> migrate.kameng_noop_s;
* ``--phase apply`` (migrations v2): ``migrate_schemas --tenant`` applying 0002 to
  every shop schema                         -> migrate.apply_one_s, migrate.schemas,
  then checks in the database (not the logs) that every tenant schema has the 0002
  row, the new column and the new index     -> migrate.verified_schemas.

Environment: BENCH_SHOPS (1000), KAMENG_MIGRATE_PROCESSES (2).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.bench._harness import (ROOT_DIR, child_env, devstack, emit, migrate_everything, populate_shops,
                                  progress, setup_django)

NAME = "migrate"
APP = "kameng_bench_app"
TABLE = f"{APP}_benchnote"
NEW_MIGRATION = "0002_priority"
NEW_COLUMN = "priority"
NEW_INDEX = "bench_note_priority_idx"

APP_FILES = {
    f"{APP}/__init__.py": "",
    f"{APP}/apps.py": f"""
        from django.apps import AppConfig


        class BenchAppConfig(AppConfig):
            name = "{APP}"
            default_auto_field = "django.db.models.BigAutoField"
        """,
    # the model follows whichever migrations module this process runs with
    f"{APP}/models.py": f"""
        import os

        from django.db import models

        STAGE2 = os.environ.get("BENCH_MIGRATIONS_MODULE", "").endswith("_v2")


        class BenchNote(models.Model):
            title = models.CharField(max_length=100)
            created_at = models.DateTimeField(auto_now_add=True)
            if STAGE2:
                {NEW_COLUMN} = models.IntegerField(default=0)

            class Meta:
                app_label = "{APP}"
                if STAGE2:
                    indexes = [models.Index(fields=["{NEW_COLUMN}"], name="{NEW_INDEX}")]
        """,
}
INITIAL = f"""
    from django.db import migrations, models


    class Migration(migrations.Migration):
        initial = True
        dependencies = []
        operations = [
            migrations.CreateModel(
                name="BenchNote",
                fields=[
                    ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                    ("title", models.CharField(max_length=100)),
                    ("created_at", models.DateTimeField(auto_now_add=True)),
                ],
            ),
        ]
    """
SECOND = f"""
    from django.db import migrations, models


    class Migration(migrations.Migration):
        dependencies = [("{APP}", "0001_initial")]
        operations = [
            migrations.AddField(model_name="benchnote", name="{NEW_COLUMN}", field=models.IntegerField(default=0)),
            migrations.AddIndex(model_name="benchnote",
                                index=models.Index(fields=["{NEW_COLUMN}"], name="{NEW_INDEX}")),
        ]
    """
for _version, _migrations in (("v1", {"0001_initial": INITIAL}),
                              ("v2", {"0001_initial": INITIAL, NEW_MIGRATION: SECOND})):
    APP_FILES[f"{APP}_migrations_{_version}/__init__.py"] = ""
    for _name, _text in _migrations.items():
        APP_FILES[f"{APP}_migrations_{_version}/{_name}.py"] = _text


def write_app(directory: Path) -> None:
    for relative, text in APP_FILES.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def tenant_schema_names() -> list[str]:
    from tenants.models import Shop

    return list(Shop.objects.order_by("id").values_list("schema_name", flat=True))


def _migrate_tenants(verbosity: int = 0) -> float:
    from django.core.management import call_command
    from django.db import connection

    started = time.perf_counter()
    # the executor writes its summary to stdout: keep stdout for BENCH lines only
    with contextlib.redirect_stdout(sys.stderr):
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=verbosity)
    seconds = time.perf_counter() - started
    connection.set_schema_to_public()
    return seconds


# --- phase 1: populate + no-op -------------------------------------------------------

def phase_populate() -> None:
    from django.core.management import call_command

    from tenants.services import spare_pool_refill

    shops = int(os.environ.get("BENCH_SHOPS", "1000"))
    migrate_everything()
    populate_shops(shops)
    spare_pool_refill()  # so that `kameng migrate` below has really nothing to do
    schemas = tenant_schema_names()
    progress(f"{len(schemas)} tenant schemas (shops + template + spares); timing no-op migrate_schemas --tenant")
    runs = [_migrate_tenants() for _ in range(3)]
    progress("no-op migrate_schemas --tenant: " + ", ".join(f"{s:.2f} s" for s in runs))
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        call_command("kameng_migrate", verbosity=0)
    kameng_noop = time.perf_counter() - started
    progress(f"no-op kameng migrate: {kameng_noop:.2f} s")
    emit(f"{NAME}.tenant_schemas", len(schemas), "schemas")
    emit(f"{NAME}.noop_s", statistics.median(runs), "s")
    emit(f"{NAME}.noop_max_s", max(runs), "s")
    emit(f"{NAME}.kameng_noop_s", kameng_noop, "s")


# --- phase 2: apply one new migration ------------------------------------------------

def verified_schemas(names: list[str]) -> set[str]:
    """Schemas whose django_migrations has the new row AND that have the new column and index."""
    from django.db import connection

    from tenants.schema import quote, quote_literal

    with_row: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(names), 100):
            chunk = names[start:start + 100]
            cursor.execute(" UNION ALL ".join(
                f"SELECT {quote_literal(name)} FROM {quote(name)}.django_migrations "
                f"WHERE app = {quote_literal(APP)} AND name = {quote_literal(NEW_MIGRATION)}"
                for name in chunk
            ))
            with_row.update(row[0] for row in cursor.fetchall())
        cursor.execute(
            """SELECT n.nspname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relname = %s AND a.attname = %s AND NOT a.attisdropped""", [TABLE, NEW_COLUMN])
        with_column = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT schemaname FROM pg_indexes WHERE tablename = %s AND indexname = %s", [TABLE, NEW_INDEX])
        with_index = {row[0] for row in cursor.fetchall()}
    progress(f"database check: {len(with_row)} schemas record {NEW_MIGRATION}, {len(with_column)} have the column, "
             f"{len(with_index)} the index")
    return with_row & with_column & with_index & set(names)


def phase_apply() -> int:
    from django.conf import settings

    from platform_core.migrating import stale_schemas

    schemas = tenant_schema_names()
    stale = stale_schemas(schemas)
    progress(f"{len(stale)} of {len(schemas)} tenant schemas miss {APP}.{NEW_MIGRATION}; applying it with "
             f"{settings.TENANT_MULTIPROCESSING_MAX_PROCESSES} processes")
    seconds = _migrate_tenants(verbosity=1)  # verbosity 1 only adds the progress bar (stderr)
    progress(f"applied in {seconds:.1f} s")
    verified = verified_schemas(schemas)
    left = stale_schemas(schemas)
    emit(f"{NAME}.apply_one_s", seconds, "s")
    emit(f"{NAME}.schemas", len(stale), "schemas")
    emit(f"{NAME}.apply_per_schema", seconds / max(1, len(stale)), "s")
    emit(f"{NAME}.verified_schemas", len(verified), "schemas")
    emit(f"{NAME}.stale_after", len(left), "schemas")
    if len(verified) != len(schemas) or left:
        missing = sorted(set(schemas) - verified)[:10]
        progress(f"NOT VERIFIED: {len(schemas) - len(verified)} schemas lack the migration, e.g. {missing}")
        return 1
    return 0


# --- orchestration -------------------------------------------------------------------

def _phase(phase: str, app_dir: Path, migrations: str) -> int:
    env = child_env(BENCH_APP_DIR=str(app_dir), BENCH_MIGRATIONS_MODULE=migrations)
    progress(f"phase {phase} (migrations module {migrations}) in a child process")
    return subprocess.run([sys.executable, "-m", "tests.bench.bench_migrate", "--phase", phase],
                          cwd=ROOT_DIR, env=env, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=["populate", "apply"])
    phase = parser.parse_args().phase
    if phase:  # a child: the server is already running (DATABASE_URL is set)
        if not os.environ.get("DATABASE_URL") or not os.environ.get("BENCH_MIGRATIONS_MODULE"):
            parser.error("--phase is run by bench_migrate itself")
        setup_django()
        if phase == "populate":
            phase_populate()
            return 0
        return phase_apply()
    with devstack() as base:
        app_dir = base / "benchapp"
        write_app(app_dir)
        code = _phase("populate", app_dir, f"{APP}_migrations_v1")
        if code == 0:
            code = _phase("apply", app_dir, f"{APP}_migrations_v2")
    return code


if __name__ == "__main__":
    sys.exit(main())
