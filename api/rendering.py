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
from typing import Any

from rest_framework.exceptions import ValidationError

_per_thread = threading.local()


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
    serializer (a plain dict, or a list with ``many``)."""
    return _bound(serializer_class, many).to_representation(instance)


def validated_values(serializer_class, data) -> tuple[dict | None, Any]:
    """``(serializer.validated_data, None)`` or ``(None, serializer.errors)`` as
    ``serializer_class(data=data).is_valid()`` would give, for a context-free input
    serializer (no ``partial``, no ``instance``)."""
    try:
        return _bound(serializer_class).run_validation(data), None
    except ValidationError as exc:
        return None, exc.detail
