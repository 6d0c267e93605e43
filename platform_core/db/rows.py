"""Reads and single-row writes of model instances, as the ORM does them, without the
ORM's per-statement query compilation.

A paid order writes a dozen rows; ``Model.objects.create()`` and
``save(update_fields=…)`` spend ~0.5 ms of Python each compiling the same SQL again
(decision 0039). These helpers build each statement once per model and field set, and
prepare values with the fields' own ``get_db_prep_save`` (JSON, time zones, IP
addresses exactly as the ORM stores them). No model signals are sent: use them only for
models without receivers (the checkout and payment rows), and ``Model.save()`` wherever
a signal or ``save()`` override matters.
"""
from __future__ import annotations

from functools import lru_cache

from django.db import connection


@lru_cache(maxsize=None)
def _insert_parts(model, ignore_conflicts: bool) -> tuple[str, str, str, tuple]:
    """``INSERT INTO t (cols)``, one row's ``(%s, …)``, the tail, and the fields written."""
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key or not f.auto_created)
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
    row = f"({', '.join(['%s'] * len(fields))})"
    tail = f"{' ON CONFLICT DO NOTHING' if ignore_conflicts else ''} RETURNING {quote(model._meta.pk.column)}"
    return head, row, tail, fields


def _written(instance, key) -> None:
    instance.pk = key
    instance._state.adding, instance._state.db = False, connection.alias


def insert_row(instance, *, ignore_conflicts: bool = False) -> bool:
    """INSERT ``instance`` and set its primary key. With ``ignore_conflicts`` a row that
    breaks a unique constraint is not written and False is returned (no exception, so no
    savepoint is needed around it)."""
    head, row, tail, fields = _insert_parts(type(instance), ignore_conflicts)
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(f"{head} VALUES {row}{tail}", params)
        returned = cursor.fetchone()
    if returned is None:
        return False
    _written(instance, returned[0])
    return True


def insert_rows(instances: list) -> None:
    """INSERT several instances of one model in one statement and set their keys."""
    if not instances:
        return
    head, row, tail, fields = _insert_parts(type(instances[0]), False)
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for instance in instances for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(f"{head} VALUES {', '.join([row] * len(instances))}{tail}", params)
        keys = [returned[0] for returned in cursor.fetchall()]
    for instance, key in zip(instances, keys, strict=True):  # PostgreSQL returns rows in VALUES order
        _written(instance, key)


@lru_cache(maxsize=None)
def _update_sql(model, names: tuple[str, ...]) -> tuple[str, tuple]:
    meta = model._meta
    fields = tuple(meta.get_field(name) for name in names)
    quote = connection.ops.quote_name
    sql = (f"UPDATE {quote(meta.db_table)} SET {', '.join(f'{quote(f.column)} = %s' for f in fields)} "
           f"WHERE {quote(meta.pk.column)} = %s")
    return sql, fields


def update_row(instance, fields: list[str] | tuple[str, ...]) -> None:
    """``instance.save(update_fields=fields)`` for a row known to exist."""
    sql, model_fields = _update_sql(type(instance), tuple(fields))
    params = [f.get_db_prep_save(f.pre_save(instance, False), connection) for f in model_fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, instance.pk])


def remember_related(instance, **related: list) -> None:
    """Let ``instance.<name>.all()`` answer from rows in hand, as after
    ``prefetch_related(name)``: a view can render an object it has just written without
    reading it back. ``filter()`` and friends still query."""
    cache = instance.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, rows in related.items():
        queryset = getattr(instance, name).get_queryset()
        queryset._result_cache, queryset._prefetch_done = list(rows), True
        cache[name] = queryset


@lru_cache(maxsize=None)
def _select_sql(model, where: str, suffix: str) -> tuple[str, list[str], list[tuple[int, list]]]:
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    sql = f"SELECT {', '.join(quote(f.column) for f in fields)} FROM {quote(model._meta.db_table)} WHERE {where}"
    converters = [(index, [(converter, f.cached_col) for converter in f.get_db_converters(connection)])
                  for index, f in enumerate(fields) if f.get_db_converters(connection)]
    return f"{sql} {suffix}".rstrip(), [f.attname for f in fields], converters


def select_rows(model, where: str, params: list, *, suffix: str = "") -> list:
    """Instances of ``model`` whose rows match the SQL condition ``where`` (a fixed
    string with ``%s`` placeholders: never user input), every concrete field loaded and
    converted as a queryset would; ``suffix`` is ``ORDER BY …``, ``LIMIT …``,
    ``FOR UPDATE``."""
    sql, names, converters = _select_sql(model, where, suffix)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    instances = []
    for row in rows:
        values = list(row)
        for index, steps in converters:
            for converter, column in steps:
                values[index] = converter(values[index], column, connection)
        instances.append(model.from_db(connection.alias, names, values))
    return instances


def select_row(model, where: str, params: list, *, suffix: str = ""):
    """The first of :func:`select_rows`, or None."""
    found = select_rows(model, where, params, suffix=suffix)
    return found[0] if found else None
