"""Answers rendered by output serializers built once per thread.

Building a DRF serializer copies every declared field (``Field.__deepcopy__`` runs each
field's ``__init__`` again): an order with its lines, events and payments is ~60 field
constructions, ~2 ms of CPU per checkout, for a structure that never changes. An output
serializer that reads no ``context`` and keeps no state between objects can be bound
once and asked to represent object after object; that is what :func:`rendered` does.
An input serializer keeps the outcome on itself (``is_valid`` → ``validated_data``), so
it is built per request by default; :func:`validated_values` validates with one bound per
thread and hands back only the plain values, for the hot endpoints."""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models.manager import BaseManager
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject

_per_thread = threading.local()

#: fields whose representation is a plain conversion of the attribute (DRF's own
#: ``to_representation``: ``int(value)``, ``str(value)``); exact classes only, since a
#: subclass may represent otherwise
_CONVERSIONS = {serializers.IntegerField: int, serializers.CharField: str}
_MISSING = object()


def _bound(serializer_class, many: bool = False):
    built = _per_thread.__dict__.setdefault("serializers", {})
    serializer = built.get((serializer_class, many))
    if serializer is None:
        serializer = serializer_class(many=many)
        serializer.child.fields if many else serializer.fields  # noqa: B018 - bind every field now
        built[(serializer_class, many)] = serializer
    return serializer


def rendered(serializer_class, instance, *, many: bool = False) -> Any:
    """Same as ``serializer_class(instance, many=many).data`` for a context-free output
    serializer (a plain dict, or a list with ``many``), from a plan made once per thread
    (:func:`_represented_by`)."""
    plans = _per_thread.__dict__.setdefault("plans", {})
    plan = plans.get((serializer_class, many))
    if plan is None:
        plan = plans[(serializer_class, many)] = _represented_by(_bound(serializer_class, many))
    return plan(instance)


def _represented_by(serializer):
    """``serializer.to_representation`` as a function that does what DRF does, field by
    field, without DRF's per-field machinery where it cannot matter: an integer or text
    field whose source is one attribute is read and converted directly, a nested list of
    serializers is represented by its own plan; every other field (date-times, JSON, method
    fields, dotted sources, a missing attribute, a callable value) goes through the field's
    own ``get_attribute`` and ``to_representation``. The answer is compared with DRF's own
    in tests/api/test_rendering_plans.py. (DRF's general path cost ~5 % of a checkout's CPU.)"""
    if isinstance(serializer, serializers.ListSerializer):
        child = serializer.child
        if type(serializer).to_representation is not serializers.ListSerializer.to_representation:
            return serializer.to_representation
        one = _represented_by(child)
        return lambda data: [one(item) for item in (data.all() if isinstance(data, BaseManager) else data)]
    if type(serializer).to_representation is not serializers.Serializer.to_representation:
        return serializer.to_representation
    steps = []
    for field in serializer._readable_fields:
        attrs = field.source_attrs
        if len(attrs) == 1 and type(field) in _CONVERSIONS:
            steps.append((field.field_name, attrs[0], _CONVERSIONS[type(field)], field))
        elif len(attrs) == 1 and isinstance(field, serializers.ListSerializer):
            steps.append((field.field_name, attrs[0], _represented_by(field), field))
        else:
            steps.append((field.field_name, None, None, field))

    def represent(instance):
        answer = {}
        mapping = isinstance(instance, Mapping)
        for name, attr, convert, field in steps:
            value = _MISSING
            if attr is not None:
                try:
                    value = instance[attr] if mapping else getattr(instance, attr)
                except (KeyError, AttributeError, ObjectDoesNotExist):
                    value = _MISSING  # DRF's own answer: a default, None, skipped, or its error
                else:
                    if callable(value) and not isinstance(value, BaseManager):
                        value = _MISSING  # a method: DRF calls it
            if value is _MISSING:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
                checked = value.pk if isinstance(value, PKOnlyObject) else value
                answer[name] = None if checked is None else field.to_representation(value)
            else:
                answer[name] = None if value is None else convert(value)
        return answer

    return represent


def validated_values(serializer_class, data) -> tuple[dict | None, Any]:
    """``(serializer.validated_data, None)`` or ``(None, serializer.errors)`` as
    ``serializer_class(data=data).is_valid()`` would give, for a context-free input
    serializer (no ``partial``, no ``instance``)."""
    try:
        return _bound(serializer_class).run_validation(data), None
    except ValidationError as exc:
        return None, exc.detail
