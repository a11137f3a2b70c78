"""Gates: a read model that folds an event type only when a few fields say so.

The agents read model folds a `HookInvoked` only when the hook blocked or
said something (`system_message`); most hook events of a log do neither, and
decoding each one whole to find that out was a tenth of a rebuild's CPU. A
projection lists its `gates`; a bulk fold (`_folding.py`, note 11) then
validates just those fields from the stored JSON (a small model, a third of
the cost), folds the events that pass, and decodes only them. An event
already decoded is asked through its data. The projection's handler still
makes the same test: the live fold gives it every event, decoded.

A gate may also say its test as the store can make it (`store_test`, an
`events.DataTest`: one of these fields set, or set to one of these values);
a fold in which every read model that folds the type gates it so asks the
store to leave out the events that fail (`_folding.py`, note 5), and the
SQLite log does, in SQL, before they reach Python. The store's test may let
more through (the gate decides): it must never keep out one the gate passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from events import DataTest, EventModel, RecordedEvent, load_data, peek

from ._lean import fields_model

__all__ = ["Gate"]


class Gate:
    """Whether a projection folds an event of `cls`, told by `wanted` from the data's
    `fields` alone (the decoded data has them too)."""

    def __init__(
        self,
        cls: type[EventModel],
        fields: tuple[str, ...],
        wanted: Callable[[Any], bool],
        *,
        store_test: tuple[tuple[str, frozenset[str] | None], ...] = (),
    ) -> None:
        self.type_name: str = cls.model_fields["type"].default
        # The test as a store makes it (see above), of some of `fields`.
        self.store_test = DataTest(self.type_name, store_test) if store_test else None
        fields_only = fields_model(cls, fields, "Gate")
        self._validate = fields_only.__pydantic_validator__.validate_json
        self._wanted = wanted

    def passes(self, event: RecordedEvent) -> bool:
        """Whether to fold `event`; if so, its data is decoded now (alone, not its page)."""
        try:
            wanted = self._wanted(peek(event, self._validate))
        except ValidationError:
            wanted = True  # decoded whole: the store's error names its position
        if wanted:
            load_data((event,))
        return wanted
