"""`kameng migrate` skips shop schemas that are already current."""
from __future__ import annotations

from django.core.management import call_command
from django.db import connection

from platform_core import migrating
from tenants.models import Shop


def test_current_schemas_are_detected_from_the_database(db):
    schemas = list(Shop.objects.values_list("schema_name", flat=True))
    assert migrating.stale_schemas(schemas) == []
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM shop_bravo.django_migrations WHERE app = 'plugins'")
    assert migrating.stale_schemas(schemas) == ["shop_bravo"]


def test_migrate_schemas_only_runs_the_stale_ones(db, monkeypatch, capsys):
    ran: list[str] = []
    monkeypatch.setattr(migrating, "run_migrations", lambda args, options, codename, schema, **kw: ran.append(schema))
    call_command("migrate_schemas", tenant=True, interactive=False, verbosity=1)
    assert ran == []
    total = Shop.objects.count()
    assert f"{total} of {total} shop schemas already current; migrating 0." in capsys.readouterr().out
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM shop_alpha.django_migrations WHERE app = 'audit' AND name = '0002_append_only'")
    call_command("migrate_schemas", tenant=True, interactive=False, verbosity=0)
    assert ran == ["shop_alpha"]


def test_explicit_targets_use_the_standard_executor(db, monkeypatch):
    seen = []
    monkeypatch.setattr(migrating.SmartExecutor, "_run_parallel", lambda self, schemas, progress: seen.append(schemas))
    call_command("migrate_schemas", "plugins", tenant=True, interactive=False, verbosity=0, schema_name="shop_alpha")
    assert seen == []  # went through django-tenants' standard path, which applied nothing


PARALLEL_SCRIPT = """
import signal, django
django.setup()
from platform_core import migrating
signal.signal(signal.SIGTERM, lambda *args: None)  # as kameng up's supervisor does
def fake_migrate_one(args, options, codename, schema):
    return schema
fake_migrate_one.__module__, fake_migrate_one.__qualname__ = "platform_core.migrating", "_migrate_one"
migrating._migrate_one = fake_migrate_one  # found by name when the job is pickled for a worker
migrating.SmartExecutor([], {"verbosity": 0})._run_parallel([f"s{n}" for n in range(6)], progress=False)
print("finished")
"""


def test_parallel_migration_finishes_when_the_parent_traps_sigterm():
    """The parallel path (forked workers, progress bar) completes under a parent that
    traps SIGTERM, as `kameng up` does while it migrates."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    db = settings.DATABASES["default"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "platform_core.settings_test", "KAMENG_TEST_OWNS_DEVSTACK": "0",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "REDIS_URL": settings.REDIS_URL}
    try:
        result = subprocess.run([sys.executable, "-c", PARALLEL_SCRIPT], env=env, capture_output=True, text=True,
                                timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("the parallel migration pool never finished") from None
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finished" in result.stdout
