"""Fast schema creation: a lean clone of the template schema and a warm pool of spares.

django-tenants' stock clone re-installs a 4,600-line PL/pgSQL function on every call
and then still runs ``migrate --fake``; it measured slower than migrating. Here the
template's DDL is read once from the catalog (``pg_get_constraintdef``,
``pg_get_indexdef``, ``pg_get_triggerdef`` with ``search_path`` on the template so
names come out unqualified), cached per template state, and replayed into a new schema
in one round trip, with the template's rows (``django_migrations``, content types)
copied along. Constraint and index names are preserved, so later migrations that
name them keep working; ``schema_fingerprint`` lets tests prove clone == template.
See docs/decisions/0002-instant-shop-provisioning.md.
"""
from __future__ import annotations

import hashlib
import threading

from django.db import connection, transaction

TEMPLATE_SCHEMA = "shop_template"

_script_cache: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _migration_state(cursor, schema: str) -> str:
    cursor.execute(f"SELECT count(*), coalesce(max(id), 0) FROM {quote(schema)}.django_migrations")
    count, top = cursor.fetchone()
    return f"{count}:{top}"


class _SearchPath:
    """Point search_path at ``schema`` for the current transaction, then restore it."""

    def __init__(self, cursor, schema: str):
        self.cursor, self.schema = cursor, schema

    def __enter__(self):
        self.cursor.execute("SELECT current_setting('search_path')")
        self.previous = self.cursor.fetchone()[0]
        self.cursor.execute("SELECT set_config('search_path', %s, true)", [f"{quote(self.schema)}, public"])
        return self

    def __exit__(self, *exc):
        self.cursor.execute("SELECT set_config('search_path', %s, true)", [self.previous])


def _build_script(cursor, source: str) -> str:
    """DDL + data statements that recreate ``source`` inside the current search_path."""
    src = quote(source)
    statements: list[str] = []
    with _SearchPath(cursor, source):
        cursor.execute(
            """SELECT c.relname FROM pg_class c
               WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p') ORDER BY c.relname""",
            [source],
        )
        tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            statements.append(
                f"CREATE TABLE {quote(table)} (LIKE {src}.{quote(table)} INCLUDING DEFAULTS "
                "INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)"
            )
        for table in tables:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {src}.{quote(table)})")
            if not cursor.fetchone()[0]:
                continue
            statements.append(f"INSERT INTO {quote(table)} OVERRIDING SYSTEM VALUE SELECT * FROM {src}.{quote(table)}")
            cursor.execute(
                """SELECT a.attname FROM pg_attribute a
                   WHERE a.attrelid = %s::regclass AND a.attidentity <> '' AND NOT a.attisdropped""",
                [f"{src}.{quote(table)}"],
            )
            for (column,) in cursor.fetchall():
                statements.append(
                    f"SELECT setval(pg_get_serial_sequence({quote_literal(quote(table))}, {quote_literal(column)}), "
                    f"coalesce((SELECT max({quote(column)}) FROM {quote(table)}), 0) + 1, false)"
                )
        # keys, uniques, exclusions and foreign keys (LIKE copied NOT NULL and CHECK
        # constraints as parsed trees, names included); foreign keys last. Constraint
        # triggers ('t') come back with the triggers below.
        cursor.execute(
            """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
               FROM pg_constraint
               WHERE connamespace = %s::regnamespace AND conrelid <> 0 AND contype NOT IN ('n', 'c', 't')
               ORDER BY contype = 'f', conrelid::regclass::text, conname""",
            [source],
        )
        for table, name, definition in cursor.fetchall():
            statements.append(f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}")
        # indexes that do not back a primary-key / unique / exclusion constraint
        # pg_get_indexdef / pg_get_triggerdef always qualify the table: drop the source schema
        cursor.execute("SELECT quote_ident(%s)", [source])
        qualified = f" ON {cursor.fetchone()[0]}."
        cursor.execute(
            """SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid
               WHERE ic.relnamespace = %s::regnamespace
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                                 WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                                   AND k.contype IN ('p', 'u', 'x'))
               ORDER BY ic.relname""",
            [source],
        )
        statements += [row[0].replace(qualified, " ON ", 1) for row in cursor.fetchall()]
        cursor.execute(
            """SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
               JOIN pg_class c ON c.oid = t.tgrelid
               WHERE c.relnamespace = %s::regnamespace AND NOT t.tgisinternal ORDER BY t.tgname""",
            [source],
        )
        statements += [row[0].replace(qualified, " ON ", 1) for row in cursor.fetchall()]
    return ";\n".join(statements) + ";"


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def clone_schema(source: str, target: str) -> None:
    """Create schema ``target`` as a structural and data copy of ``source``.

    Runs inside the caller's transaction: if anything after it fails, the new schema
    disappears with the rollback.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        state = _migration_state(cursor, source)
        key = (source, state)
        script = _script_cache.get(key)
        if script is None:
            script = _build_script(cursor, source)
            with _lock:
                _script_cache.clear()  # only the newest template state matters
                _script_cache[key] = script
        cursor.execute(f"CREATE SCHEMA {quote(target)}")
        with _SearchPath(cursor, target):
            cursor.execute(script)


def schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", [name])
        return cursor.fetchone()[0]


def rename_schema(old: str, new: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER SCHEMA {quote(old)} RENAME TO {quote(new)}")


def drop_schema(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {quote(name)} CASCADE")


def migration_state(schema: str) -> str:
    with connection.cursor() as cursor:
        return _migration_state(cursor, schema)


def schema_fingerprint(schema: str) -> str:
    """A digest of everything structural in ``schema`` (columns, constraints, indexes,
    triggers, migration rows) with the schema name itself factored out."""
    parts: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor, _SearchPath(cursor, schema):
        cursor.execute("SELECT quote_ident(%s)", [schema])
        qualified = f" ON {cursor.fetchone()[0]}."
        cursor.execute(
            """SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod),
                      a.attnotnull, a.attidentity, coalesce(pg_get_expr(d.adbin, d.adrelid), '')
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
               WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
               ORDER BY c.relname, a.attnum""",
            [schema],
        )
        parts += [repr(row) for row in cursor.fetchall()]
        cursor.execute(
            """SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
               WHERE connamespace = %s::regnamespace ORDER BY 1, 2""",
            [schema],
        )
        parts += [repr(row) for row in cursor.fetchall()]
        cursor.execute(
            """SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relnamespace = %s::regnamespace ORDER BY c.relname""",
            [schema],
        )
        parts += [row[0].replace(qualified, " ON ", 1) for row in cursor.fetchall()]
        cursor.execute(
            """SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
               WHERE c.relnamespace = %s::regnamespace AND NOT t.tgisinternal ORDER BY t.tgname""",
            [schema],
        )
        parts += [row[0].replace(qualified, " ON ", 1) for row in cursor.fetchall()]
        cursor.execute(
            """SELECT p.proname FROM pg_proc p WHERE p.pronamespace = %s::regnamespace ORDER BY 1""", [schema]
        )
        parts += ["fn:" + row[0] for row in cursor.fetchall()]
        cursor.execute(f"SELECT app, name FROM {quote(schema)}.django_migrations ORDER BY app, name")
        parts += [f"{app}.{name}" for app, name in cursor.fetchall()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
