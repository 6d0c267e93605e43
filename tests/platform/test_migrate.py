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
