"""Reads and single-row writes of model instances, as the ORM does them, without the
ORM's per-statement query compilation.

A paid order writes a dozen rows; ``Model.objects.create()`` and
``save(update_fields=…)`` spend ~0.5 ms of Python each compiling the same SQL again
(decision 0039). These helpers build each statement once per model and field set, and
prepare values with the fields' own ``get_db_prep_save`` (JSON, time zones, IP
addresses exactly as the ORM stores them), except plain integers, text and booleans,
which a plan made once per statement prepares as those fields would. No model signals are sent: use them only for
models without receivers (the checkout and payment rows), and ``Model.save()`` wherever
a signal or ``save()`` override matters.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from contextvars import ContextVar
from functools import lru_cache

from django.db import connection
from django.db.models.base import ModelState

from platform_core.db.cursors import statement_cursor

# writes waiting to go to the database together (see batched_writes); None outside a batch
_pending_writes: ContextVar[list | None] = ContextVar("kameng_pending_writes", default=None)


@contextmanager
def batched_writes() -> Iterator[None]:
    """Inside a transaction: row writes whose answer nobody waits for (``update_row``,
    ``insert_row(…, returning=False)``, ``insert_rows(…, returning=False)``) are held
    and sent as one statement just before the next statement of any kind, and at the
    end of the block. Each statement is a round trip to the database and costs far more
    than its Python; a paid order's last five writes become one (decision 0042).

    The held writes go out before every later read, savepoint and rollback to one, so
    the transaction sees its own writes as before; an error in one (a constraint) is
    raised by the statement that sends it, still inside the transaction. Two writes to
    the same row never share a statement (PostgreSQL would apply only one)."""
    if _pending_writes.get() is not None:  # nested: the outer block sends them
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("batched_writes() belongs inside transaction.atomic(): held writes must go before COMMIT")
    pending: list = []
    token = _pending_writes.set(pending)
    try:
        with connection.execute_wrapper(_send_held_writes_first):
            yield
            _send_held_writes(pending)
    finally:
        _pending_writes.reset(token)


def hold_write(sql: str, params: list, *, table: str, row_pk=None) -> None:
    """A write statement of ``table`` whose answer nobody waits for, held as
    :func:`batched_writes` holds row writes (run at once outside a batch). ``row_pk``:
    the one row it changes, so two writes of it never share a statement."""
    _hold_or_execute(sql, params, table, row_pk)


def _hold_or_execute(sql: str, params: list, table: str, row_pk=None) -> None:
    pending = _pending_writes.get()
    if pending is None:
        with statement_cursor() as cursor:
            cursor.execute(sql, params)
        return
    if row_pk is not None and any(held[2] == table and held[3] == row_pk for held in pending):
        _send_held_writes(pending)
    pending.append((sql, params, table, row_pk))


def _held_items(pending: list) -> tuple[str, list]:
    """The held writes as WITH items, their parameters, and forgotten."""
    items = ", ".join(f"held{n} AS ({held[0]})" for n, held in enumerate(pending))
    params = [value for held in pending for value in held[1]]
    pending.clear()
    return items, params


def _combined(pending: list) -> tuple[str, list]:
    """The held writes as one statement (and forgotten)."""
    if len(pending) == 1:
        sql, params = pending[0][0], pending[0][1]
        pending.clear()
        return sql, params
    items, params = _held_items(pending)
    # every data-modifying WITH runs exactly once, whether the outer query reads it or not
    return f"WITH {items} SELECT 1", params


def with_held_writes(sql: str, params: list, *, tables: tuple[str, ...]) -> tuple[str, list]:
    """``sql`` with the held writes in front of it as WITH items — one round trip for
    both — when none of them is to one of ``tables``, the tables the statement reads or
    writes (all of them: the items run on the statement's snapshot, so the statement
    does not see their effects). Otherwise the held writes go out first, on their own."""
    pending = _pending_writes.get()
    if not pending:
        return sql, params
    if any(held[2] in tables for held in pending):
        _send_held_writes(pending)
        return sql, params
    items, held_params = _held_items(pending)
    body = sql.lstrip()
    merged = f"WITH {items}, {body[5:]}" if body[:5].upper() == "WITH " else f"WITH {items} {body}"
    return merged, [*held_params, *params]


def _send_held_writes(pending: list) -> None:
    if pending:
        sql, params = _combined(pending)
        with statement_cursor() as cursor:  # goes through _send_held_writes_first: nothing is held by now
            cursor.execute(sql, params)


def _send_held_writes_first(execute, sql, params, many, context):
    pending = _pending_writes.get()
    if pending:
        held_sql, held_params = _combined(pending)
        execute(held_sql, held_params, False, context)
    return execute(sql, params, many, context)


def _stock(field, name: str, owner) -> bool:
    """``field``'s class uses ``owner``'s own ``name`` method (not an override)."""
    return getattr(type(field), name) is getattr(owner, name)


def _integer_wrapper(internal_type: str):
    """What the backend wraps an integer of this column type in (psycopg's ``Int4``,
    ``Int8`` …, so the statement's parameter types never change), or None: as it is."""
    wrapped = connection.ops.adapt_integerfield_value(1, internal_type)
    return None if type(wrapped) is int else type(wrapped)


def _passed_plainly(field) -> tuple[type, object] | None:
    """``(kind, wrapper)``: a value of exactly type ``kind`` (or None) is one
    ``field.get_db_prep_save`` would only wrap in ``wrapper`` (None: return as it is) —
    ``int`` for integer, auto and integer-keyed foreign-key fields, ``str`` for text,
    ``bool`` for booleans, ``datetime`` for date-times (the aware ones; ``_AWARE``). None
    when its preparation may do more (JSON, dates, IP addresses, decimals, an overridden
    method): those always go through the field."""
    from django.db.models import fields as f
    from django.db.models.fields.related import ForeignKey

    if isinstance(field, ForeignKey):
        # an empty string would become NULL: only keys of integers are passed plainly
        target = _passed_plainly(field.target_field) if _stock(field, "get_db_prep_save", ForeignKey) else None
        return target if target is not None and target[0] is int else None
    if not _stock(field, "get_db_prep_save", f.Field):
        return None
    if isinstance(field, f.AutoFieldMixin):
        plain = _stock(field, "get_db_prep_value", f.AutoFieldMixin) and _stock(field, "get_prep_value", f.IntegerField)
        return (int, None) if plain and connection.ops.validate_autopk_value(1) == 1 else None
    if isinstance(field, f.IntegerField):
        plain = _stock(field, "get_db_prep_value", f.IntegerField) and _stock(field, "get_prep_value", f.IntegerField)
        return (int, _integer_wrapper(field.get_internal_type())) if plain else None
    if isinstance(field, f.DateTimeField):
        # PostgreSQL's backend stores a datetime as it is; only a naive one is changed
        # (made aware, with a warning): _AWARE sends those through the field
        plain = all(_stock(field, name, owner) for name, owner in (
            ("get_db_prep_value", f.DateTimeField), ("get_prep_value", f.DateTimeField),
            ("to_python", f.DateTimeField))) and _returns_its_argument(connection.ops.adapt_datetimefield_value)
        return (datetime, _AWARE) if plain else None
    for owner, kind in ((f.CharField, str), (f.TextField, str), (f.BooleanField, bool)):
        if isinstance(field, owner):
            plain = all(_stock(field, name, base) for name, base in (
                ("get_db_prep_value", f.Field), ("get_prep_value", owner), ("to_python", owner)))
            return (kind, None) if plain else None
    return None


_NOT_SET = object()
#: the "wrapper" of datetimes passed plainly: an aware one as it is, a naive one through its field
_AWARE = object()


def _returns_its_argument(adapt) -> bool:
    marker = datetime(2000, 1, 1, tzinfo=timezone.utc)
    return adapt(marker) is marker


def _reads_its_attribute(field) -> bool:
    """``field.pre_save`` only reads the attribute (no ``auto_now``)."""
    from django.db.models import DateField, DateTimeField, Field

    pre_save = type(field).pre_save
    return pre_save is Field.pre_save or (
        pre_save in (DateField.pre_save, DateTimeField.pre_save) and not field.auto_now and not field.auto_now_add)


def _value_plan(fields) -> tuple:
    """Per field: (attname, whether its ``pre_save`` only reads the attribute, the kind
    passed plainly or None, its wrapper, the field); made once per statement shape
    (``_insert_parts``, ``_update_sql``)."""
    return tuple((f.attname, _reads_its_attribute(f), *(_passed_plainly(f) or (None, None)), f) for f in fields)


def _db_values(plan: tuple, instance, add: bool) -> list:
    """``[f.get_db_prep_save(f.pre_save(instance, add), connection) for f in fields]``
    for a :func:`_value_plan` of the fields, with the common values (an int, a str, a
    bool, an aware datetime, or None, in a field of that kind) prepared directly: each field's own
    four-method path, for each of a paid order's ~90 values, was ~2 % of a web worker's
    CPU. Anything else goes through the field."""
    attributes = instance.__dict__
    values = []
    for attname, plain_read, kind, wrapper, field in plan:
        value = attributes.get(attname, _NOT_SET) if plain_read else _NOT_SET
        if value is _NOT_SET:
            value = field.pre_save(instance, add)
        if kind is None or (value is not None and type(value) is not kind):
            value = field.get_db_prep_save(value, connection)
        elif wrapper is not None and value is not None:
            if wrapper is not _AWARE:
                value = wrapper(value)
            elif value.utcoffset() is None:
                value = field.get_db_prep_save(value, connection)
        values.append(value)
    return values


@lru_cache(maxsize=None)
def _insert_parts(model, ignore_conflicts: bool, keyed: bool = False) -> tuple[str, str, str, tuple]:
    """``INSERT INTO t (cols)``, one row's ``(%s, …)``, the tail, and the plan of the
    fields written (``keyed``: the primary key too, taken in advance with
    :func:`new_keys_sql`)."""
    fields = tuple(f for f in model._meta.concrete_fields if keyed or not f.primary_key or not f.auto_created)
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
    row = f"({', '.join(['%s'] * len(fields))})"
    tail = f"{' ON CONFLICT DO NOTHING' if ignore_conflicts else ''} RETURNING {quote(model._meta.pk.column)}"
    return head, row, tail, _value_plan(fields)


def _written(instance, key) -> None:
    instance.pk = key
    instance._state.adding, instance._state.db = False, connection.alias


def insert_row(instance, *, ignore_conflicts: bool = False, returning: bool = True) -> bool:
    """INSERT ``instance`` and set its primary key. With ``ignore_conflicts`` a row that
    breaks a unique constraint is not written and False is returned (no exception, so no
    savepoint is needed around it). ``returning=False``: nobody needs the key, so inside
    :func:`batched_writes` the row waits to go with the next statement (pk stays None)."""
    head, row, tail, plan = _insert_parts(type(instance), ignore_conflicts)
    params = _db_values(plan, instance, True)
    if not returning:
        if ignore_conflicts:
            raise ValueError("insert_row(ignore_conflicts=True) answers whether the row was written: it needs RETURNING")
        _hold_or_execute(f"{head} VALUES {row}", params, instance._meta.db_table)
        return True
    with statement_cursor() as cursor:
        cursor.execute(f"{head} VALUES {row}{tail}", params)
        returned = cursor.fetchone()
    if returned is None:
        return False
    _written(instance, returned[0])
    return True


def insert_row_alongside(instance, query: str, params: list, *, ignore_conflicts: bool = False) -> tuple[bool, tuple]:
    """:func:`insert_row` and a one-row read (``query``, e.g. a count) in one statement.
    The read runs on the statement's snapshot: it does not see the new row. Returns
    whether the row was written and the read's row."""
    head, row, tail, plan = _insert_parts(type(instance), ignore_conflicts)
    values = _db_values(plan, instance, True)
    pk = connection.ops.quote_name(instance._meta.pk.column)
    with statement_cursor() as cursor:
        cursor.execute(f"WITH alongside AS ({query}), written AS ({head} VALUES {row}{tail}) "
                       f"SELECT (SELECT {pk} FROM written), alongside.* FROM alongside", [*params, *values])
        returned = cursor.fetchone()
    if returned[0] is not None:
        _written(instance, returned[0])
    return returned[0] is not None, tuple(returned[1:])


def new_keys_sql(model) -> str:
    """An SQL expression (one ``%s``: how many) that takes that many new primary keys of
    ``model`` from its sequence, as an array: read with another statement, the keys let
    the rows' INSERT be held (:func:`insert_rows` ``keyed``) instead of waited for."""
    meta = model._meta
    return (f"ARRAY(SELECT nextval(pg_get_serial_sequence('{meta.db_table}', '{meta.pk.column}')) "
            f"FROM generate_series(1, %s))")


def new_key_sql(model) -> str:
    """An SQL expression taking one new primary key of ``model`` from its sequence (see
    :func:`new_keys_sql`)."""
    meta = model._meta
    return f"nextval(pg_get_serial_sequence('{meta.db_table}', '{meta.pk.column}'))"


def insert_rows(instances: list, *, returning: bool = True, keyed: bool = False) -> None:
    """INSERT several instances of one model in one statement and set their keys
    (``returning=False``: as for :func:`insert_row`). ``keyed``: each instance has its
    key already (:func:`new_keys_sql`), so the INSERT is held like ``returning=False``
    and the instances count as saved."""
    if not instances:
        return
    head, row, tail, plan = _insert_parts(type(instances[0]), False, keyed)
    params = [value for instance in instances for value in _db_values(plan, instance, True)]
    if keyed or not returning:
        _hold_or_execute(f"{head} VALUES {', '.join([row] * len(instances))}", params, instances[0]._meta.db_table)
        for instance in instances if keyed else ():
            _written(instance, instance.pk)
        return
    with statement_cursor() as cursor:
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
    return sql, _value_plan(fields)


def update_row(instance, fields: list[str] | tuple[str, ...]) -> None:
    """``instance.save(update_fields=fields)`` for a row known to exist (held inside
    :func:`batched_writes`)."""
    sql, plan = _update_sql(type(instance), tuple(fields))
    params = _db_values(plan, instance, False)
    _hold_or_execute(sql, [*params, instance.pk], instance._meta.db_table, instance.pk)


class _RowsInHand:
    """Stands in a prefetch cache for a relation's rows in hand: ``all()``, iterating,
    ``len``, ``count()`` and ``exists()`` answer from them; any other queryset method
    (``filter``, ``order_by``, …) goes to the relation's own queryset and queries."""

    def __init__(self, rows: list, related_queryset):
        self._rows, self._related_queryset = rows, related_queryset

    def all(self):
        return self

    def __iter__(self):
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __bool__(self) -> bool:
        return bool(self._rows)

    def __getitem__(self, index):
        return self._rows[index]

    def count(self) -> int:
        return len(self._rows)

    def exists(self) -> bool:
        return bool(self._rows)

    def __getattr__(self, name):
        return getattr(self._related_queryset(), name)


def remember_related(instance, **related: list) -> None:
    """Let ``instance.<name>.all()`` answer from rows in hand, as after
    ``prefetch_related(name)``: a view can render an object it has just written without
    reading it back. ``filter()`` and friends still query. The relation's own queryset
    is built only then: building it (its filter) for every answer cost ~3 % of a
    checkout's CPU."""
    cache = instance.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, rows in related.items():
        manager = getattr(instance, name)
        # the manager's queryset without the cache entry this sets (it would answer itself)
        cache[name] = _RowsInHand(list(rows), lambda manager=manager: manager._apply_rel_filters(
            manager.model._default_manager.get_queryset()))


@lru_cache(maxsize=None)
def _select_sql(model, where: str, suffix: str) -> tuple[str, list[str], list[tuple[int, list]]]:
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    sql = f"SELECT {', '.join(quote(f.column) for f in fields)} FROM {quote(model._meta.db_table)} WHERE {where}"
    converters = [(index, [(converter, f.cached_col) for converter in f.get_db_converters(connection)])
                  for index, f in enumerate(fields) if f.get_db_converters(connection)]
    return f"{sql} {suffix}".rstrip(), [f.attname for f in fields], converters


@lru_cache(maxsize=None)
def _made_plainly(model) -> bool:
    """``Model.from_db`` would do no more than set the attributes: the model keeps
    Django's ``__init__`` and ``from_db``, and nothing listens for its instances."""
    from django.db.models import Model, signals

    return (model.__init__ is Model.__init__ and model.from_db.__func__ is Model.from_db.__func__
            and not signals.pre_init.has_listeners(model) and not signals.post_init.has_listeners(model))


@lru_cache(maxsize=None)
def _construction_plan(model) -> tuple | None:
    """Per concrete field: (name, attname, related, default maker) for :func:`new_row`;
    None when the model is not made plainly or has a relation to something other than a
    primary key (Django's own ``__init__`` is used then)."""
    if not _made_plainly(model):
        return None
    plan = []
    for field in model._meta.concrete_fields:
        if getattr(field, "generated", False):
            return None
        related = field.is_relation
        if related and not field.target_field.primary_key:
            return None
        plan.append((field.name, field.attname, related, field.get_default))
    return tuple(plan)


def blank_instance(model, *, adding: bool, db: str | None):
    """An instance of ``model`` with no attributes set, as ``__init__`` and unpickling
    start one (for models made plainly: see ``_made_plainly``)."""
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = adding, db
    return instance


def new_row(model, **values):
    """``model(**values)`` for the rows a checkout writes, without ``__init__``'s general
    path (positional arguments, properties, two signals): ~4 µs a row instead of ~13, for
    the dozen rows of a paid order. A related object (``order=order``) is set with its key and cached on the
    instance as the descriptor would; fields not given take their defaults. A model that
    is not made plainly (see ``_made_plainly``) goes through ``__init__``."""
    plan = _construction_plan(model)
    if plan is None:
        return model(**values)
    instance = blank_instance(model, adding=True, db=None)
    state, attributes = instance._state, instance.__dict__
    for name, attname, related, default in plan:
        if related and name in values:
            target = values.pop(name)
            attributes[attname] = None if target is None else target.pk
            state.fields_cache[name] = target
        elif attname in values:
            attributes[attname] = values.pop(attname)
        else:
            attributes[attname] = default()
    if values:
        raise TypeError(f"{model.__name__}() got unexpected keyword arguments: {', '.join(map(repr, values))}")
    return instance


def _loaded(model, names: list[str], converters: list, values: list):
    for index, steps in converters:
        for converter, column in steps:
            values[index] = converter(values[index], column, connection)
    if not _made_plainly(model):
        return model.from_db(connection.alias, names, values)
    # what from_db does with every concrete field loaded, without __init__'s per-field
    # loop and its two signals (~20 µs a row, ~1 % of a checkout): the fields' descriptors
    # store a value on a new instance in its __dict__ as it is
    instance = blank_instance(model, adding=False, db=connection.alias)
    instance.__dict__.update(zip(names, values))
    return instance


def select_rows(model, where: str, params: list, *, suffix: str = "", independent_of_held: bool = False) -> list:
    """Instances of ``model`` whose rows match the SQL condition ``where`` (a fixed
    string with ``%s`` placeholders: never user input), every concrete field loaded and
    converted as a queryset would; ``suffix`` is ``ORDER BY …``, ``LIMIT …``,
    ``FOR UPDATE``. ``independent_of_held``: ``where`` reads no other table, so held
    writes to other tables travel with this read (:func:`with_held_writes`)."""
    sql, names, converters = _select_sql(model, where, suffix)
    if independent_of_held:
        sql, params = with_held_writes(sql, params, tables=(model._meta.db_table,))
    with statement_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [_loaded(model, names, converters, list(row)) for row in rows]


@lru_cache(maxsize=None)
def _joined_sql(models: tuple, joins: str, where: str, suffix: str, extra: tuple[str, ...]):
    quote = connection.ops.quote_name
    columns, parts = [], []
    for alias, model in enumerate(models):
        fields = model._meta.concrete_fields
        first = len(columns)
        columns += [f"t{alias}.{quote(f.column)}" for f in fields]
        converters = [(index, [(converter, f.cached_col) for converter in f.get_db_converters(connection)])
                      for index, f in enumerate(fields) if f.get_db_converters(connection)]
        parts.append((model, first, len(columns), [f.attname for f in fields], converters))
    sql = (f"SELECT {', '.join(columns + list(extra))} FROM {quote(models[0]._meta.db_table)} t0 {joins} "
           f"WHERE {where} {suffix}")
    return sql.rstrip(), parts, len(columns)


def select_joined(models: tuple, joins: str, where: str, params: list, *, suffix: str = "",
                  extra: tuple[str, ...] = ()) -> tuple | None:
    """One row of several models read in one statement, as :func:`select_row` reads one:
    ``models[n]`` is aliased ``t<n>`` (``t0`` in FROM, the others in ``joins``), and
    each ``extra`` SQL expression adds a plain value after the instances. ``params``
    follow the placeholders' order in the statement: ``extra``, ``joins``, ``where``. A
    model whose row a LEFT JOIN did not find comes back as None; no row at all, None."""
    sql, parts, width = _joined_sql(tuple(models), joins, where, suffix, tuple(extra))
    with statement_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return _joined_row(parts, width, row)


def _joined_row(parts, width: int, row) -> tuple:
    """The instances (None for a model a LEFT JOIN did not find) and extra values of one
    row read by a :func:`_joined_sql` statement."""
    found = []
    for model, first, last, names, converters in parts:
        values = list(row[first:last])
        found.append(None if values[names.index(model._meta.pk.attname)] is None
                     else _loaded(model, names, converters, values))
    return (*found, *row[width:])


def insert_row_locking_joined(instance, query: str, params: list, models: tuple, joins: str, where: str,
                              joined_params: list, *, suffix: str = "", ignore_conflicts: bool = False,
                              extra: tuple[str, ...] = ()) -> tuple[bool, tuple, tuple | None]:
    """In one statement, in this order: the one-row read ``query`` (e.g. ``set_config``
    of a lock timeout), :func:`select_joined`'s row (``suffix`` may lock it: ``… FOR
    UPDATE``; ``extra`` as there, without parameters), then :func:`insert_row` of
    ``instance``. Returns whether the row was written, ``query``'s row, and the joined
    row as :func:`select_joined` gives it (None when nothing matched): one round trip for
    what took two (decision 0047)."""
    head, row, tail, plan = _insert_parts(type(instance), ignore_conflicts)
    values = _db_values(plan, instance, True)
    joined_sql, parts, width = _joined_sql(tuple(models), joins, where, suffix, tuple(extra))
    width_with_extra = width + len(extra)
    pk = connection.ops.quote_name(instance._meta.pk.column)
    # a nested loop: the outer read first, then the locked join; the INSERT's id is an
    # InitPlan evaluated when the one result row is formed, so after the lock is held
    with statement_cursor() as cursor:
        cursor.execute(f"WITH alongside AS ({query}), written AS ({head} VALUES {row}{tail}) "
                       f"SELECT (SELECT {pk} FROM written), alongside.*, found.* FROM alongside "
                       f"LEFT JOIN LATERAL ({joined_sql}) found ON TRUE", [*params, *values, *joined_params])
        returned = cursor.fetchone()
    if returned[0] is not None:
        _written(instance, returned[0])
    read = returned[1:len(returned) - width_with_extra]
    joined = returned[len(returned) - width_with_extra:]
    found = None if all(value is None for value in joined) else _joined_row(parts, width, joined)
    return returned[0] is not None, tuple(read), found


def related_rows_sql(model, foreign_key: str, outer_key: str) -> str:
    """An SQL expression for :func:`select_joined`'s ``extra``: every row of ``model``
    whose ``foreign_key`` column is ``outer_key`` (e.g. ``t0.id``), in key order, as one
    JSON array of arrays (NULL for none); :func:`related_rows` makes them instances. For
    models whose fields JSON carries exactly (integers, text, booleans, no converters)."""
    meta = model._meta
    fields = meta.concrete_fields
    if any(f.get_db_converters(connection) or not isinstance(_passed_plainly(f), tuple) for f in fields):
        raise ValueError(f"{model.__name__} has fields JSON would not carry exactly")
    quote = connection.ops.quote_name
    columns = ", ".join(f"r.{quote(f.column)}" for f in fields)
    return (f"(SELECT json_agg(json_build_array({columns}) ORDER BY r.{quote(meta.pk.column)}) "
            f"FROM {quote(meta.db_table)} r WHERE r.{quote(foreign_key)} = {outer_key})")


def related_rows(model, value) -> list:
    """The instances of a :func:`related_rows_sql` value, as :func:`select_rows` reads them."""
    names = [f.attname for f in model._meta.concrete_fields]
    return [_loaded(model, names, [], list(values)) for values in value or ()]


def select_row(model, where: str, params: list, *, suffix: str = ""):
    """The first of :func:`select_rows`, or None."""
    found = select_rows(model, where, params, suffix=suffix)
    return found[0] if found else None
