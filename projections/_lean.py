"""Lean reads: a read model's handler given only the fields it reads of an event.

A handler of the agents read model reads five fields of a `ModelResponded`
and none of its `content` (the model's whole answer: its text, its tool
calls and their inputs, most of the event's bytes). A projection lists, per
event class, the fields its handler reads (`lean`); a bulk fold
(`_folding.py`, note 12) then validates just those from the stored JSON: a
small model of the same names, types and defaults, made once here, whose
validation makes no Python object for the fields left out. On events as
fleet records them that is 0.6 times the cost of the whole model
(`BENCHMARKS.md`, twentieth pass).

An event already decoded gives its data, the whole model, which has the
fields too; the live fold always does. As with a gate (`_gates.py`), a row
the whole model would refuse only for a field the handler does not read (a
key it does not know, a wrong type there: a file edited by hand) is folded
from what it reads; whatever decodes it whole (an API read, an export)
still refuses it, naming its position. A handler that read a field it does
not list would fail only in bulk folds: `tests/projections/test_projections_lean.py`
reads each listed handler's code and checks it reads no other.

Several read models of one fold reading a type lean (a `ModelResponded`:
the agents, the fleet and the runs) share one validation: the fold
validates each undecoded event of the type once, by a model of the union
of their fields (`union`), and hands the results to their handlers by
position (`leaned`, set while a page folds, `sharing`). Each handler reads
its own fields of it; three lean validations would cost more than one whole.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from events import EventModel, RecordedEvent, peek

__all__ = ["Lean", "fields_model", "lean_data", "leaned", "sharing", "union"]

# The lean data the fold of a page validated, by position (`sharing`); none outside one.
_leaned: ContextVar[Mapping[int, Any] | None] = ContextVar("projections_leaned", default=None)
_NONE: Mapping[int, Any] = {}  # never changed: a plain dict's get is the quickest


def fields_model(cls: type[EventModel], fields: tuple[str, ...], suffix: str) -> type[BaseModel]:
    """A model of `fields` of `cls` alone (same annotations and defaults); the others in
    the JSON it validates are ignored. Raises ValueError naming a field `cls` lacks."""
    unknown = set(fields) - set(cls.model_fields)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{cls.__name__}{suffix}",
        **{
            name: (info.annotation, info)
            for name, info in cls.model_fields.items()
            if name in fields
        },
    )
    return model


class Lean:
    """The fields of `cls` a projection's handler reads, and a validator of just those."""

    def __init__(self, cls: type[EventModel], fields: tuple[str, ...]) -> None:
        self.cls = cls
        self.type_name: str = cls.model_fields["type"].default
        model = fields_model(cls, fields, "Lean")
        self.validate_json: Callable[[str], Any] = model.__pydantic_validator__.validate_json
        self.fields = frozenset(fields)

    def __repr__(self) -> str:
        return f"Lean({self.cls.__name__}, {sorted(self.fields)})"


def union(leans: Iterable[Lean]) -> Lean:
    """One `Lean` of the fields of all of `leans` (of one class): what each of them reads."""
    found = list(leans)
    fields = frozenset().union(*(lean.fields for lean in found))
    return _union(found[0].cls, tuple(sorted(fields)))


@functools.cache  # a handful of combinations, each a model made once
def _union(cls: type[EventModel], fields: tuple[str, ...]) -> Lean:
    return Lean(cls, fields)


def leaned() -> Mapping[int, Any]:
    """The lean data validated for the page being folded, by position (see above)."""
    return _leaned.get() or _NONE


@contextlib.contextmanager
def sharing(data: Mapping[int, Any]) -> Iterator[None]:
    """Hand `data` (lean data by position) to the handlers that fold a page meanwhile."""
    token = _leaned.set(data)
    try:
        yield
    finally:
        _leaned.reset(token)


def lean_data(
    event: RecordedEvent, validate_json: Callable[[str], Any], shared: Mapping[int, Any]
) -> Any:
    """What a lean handler is given of `event`, not decoded yet: the lean data its fold
    validated for the page (`shared`), else its own fields validated by `validate_json`,
    else (they do not validate) its data, whose decoding raises the store's error."""
    if shared:  # a fold of one read model shares nothing: no lookup an event
        data = shared.get(event.position)
        if data is not None:
            return data
    try:
        return peek(event, validate_json)
    except ValidationError:
        return event.data  # decoded whole: the store's error names its position
