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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, create_model

from events import EventModel

__all__ = ["Lean", "fields_model"]


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
