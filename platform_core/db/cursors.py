"""One cursor kept per database connection for the statements the checkout and the
webhook send themselves (``platform_core.db.rows``, the key claim, the stock counters).

``connection.cursor()`` makes a new psycopg cursor and a Django wrapper for every
statement and walks django-tenants' search-path check, the health check and the
debug-cursor choice each time: ~35 µs of a web worker's CPU per statement, a third of
what a statement costs it in all (decision 0051). :func:`statement_cursor` gives the
same statement the same treatment — Django's execute wrappers, its error translation
(``IntegrityError`` and friends), its refusal to run in a broken transaction — through a
cursor made once per connection, whenever nothing about the connection asks for more:
it is connected, its search path is the current schema's, no health check is due and
no query is being logged. Otherwise it is Django's own cursor."""
from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections


class KeptCursor:
    """Django's ``CursorWrapper.execute`` (wrappers, errors, broken transactions) over a
    psycopg cursor that stays open with its connection. Used as a context manager like
    Django's cursors; leaving the block does not close it. It offers what those
    statements use: ``execute``, ``fetchone``, ``fetchall``, ``rowcount``, ``description``."""

    __slots__ = ("db", "cursor")

    def __init__(self, db, cursor):
        self.db = db
        self.cursor = cursor

    def __enter__(self) -> KeptCursor:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def execute(self, sql: str, params=None):
        db = self.db
        db.validate_no_broken_transaction()
        wrappers = db.execute_wrappers
        with db.wrap_database_errors:
            if not wrappers:
                return self.cursor.execute(sql, params)
            run = self._execute
            for wrapper in reversed(wrappers):
                run = functools.partial(wrapper, run)
            return run(sql, params, False, {"connection": db, "cursor": self})

    def _execute(self, sql, params, many, context):
        return self.cursor.execute(sql, params)

    def fetchone(self):
        with self.db.wrap_database_errors:
            return self.cursor.fetchone()

    def fetchall(self) -> list:
        with self.db.wrap_database_errors:
            return self.cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount

    @property
    def description(self) -> Any:
        return self.cursor.description


def statement_cursor():
    """A cursor for one statement and its results, used as ``with statement_cursor() as
    cursor:`` in place of ``connection.cursor()`` (see the module's docstring)."""
    db = connections[DEFAULT_DB_ALIAS]
    raw = db.connection
    if (raw is None or db.queries_logged or not db.search_path_set_schemas
            or not getattr(settings, "TENANT_LIMIT_SET_CALLS", False)
            or (db.health_check_enabled and not db.health_check_done)):
        return db.cursor()  # connects, sets the search path, checks health, logs: as Django does
    db.validate_thread_sharing()
    kept = db.__dict__.get("_kept_cursor")
    if kept is None or kept.cursor.connection is not raw or kept.cursor.closed:
        with db.wrap_database_errors:
            kept = db.__dict__["_kept_cursor"] = KeptCursor(db, db.create_cursor())
    return kept
