"""Answers rendered by output serializers built once per thread.

Building a DRF serializer copies every declared field (``Field.__deepcopy__`` runs each
field's ``__init__`` again): an order with its lines, events and payments is ~60 field
constructions, ~2 ms of CPU per checkout, for a structure that never changes. An output
serializer that reads no ``context`` and keeps no state between objects can be bound
once and asked to represent object after object; that is what :func:`rendered` does.
Input serializers (validation keeps state) are still built per request."""
from __future__ import annotations

import threading
from typing import Any

_per_thread = threading.local()


def rendered(serializer_class, instance, *, many: bool = False) -> Any:
    """Same as ``serializer_class(instance, many=many).data`` for a context-free output
    serializer (a plain dict, or a list with ``many``)."""
    built = _per_thread.__dict__.setdefault("serializers", {})
    serializer = built.get((serializer_class, many))
    if serializer is None:
        serializer = serializer_class(many=many)
        serializer.child.fields if many else serializer.fields  # noqa: B018 - bind every field now
        built[(serializer_class, many)] = serializer
    return serializer.to_representation(instance)
