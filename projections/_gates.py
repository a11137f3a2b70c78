"""Gates: a read model that folds an event type only when a few fields say so.

The agents read model folds a `HookInvoked` only when the hook blocked or
said something (`system_message`); most hook events of a log do neither, and
decoding each one whole to find that out was a tenth of a rebuild's CPU. A
projection lists its `gates`; a bulk fold (`_folding.py`, note 11) then
validates just those fields from the stored JSON (a small model, a third of
the cost), folds the events that pass, and decodes only them. An event
already decoded is asked through its data. The projection's handler still
makes the same test: the live fold gives it every event, decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from events import EventModel, RecordedEvent, load_data, peek

from ._lean import fields_model

__all__ = ["Gate"]


class Gate:
    """Whether a projection folds an event of `cls`, told by `wanted` from the data's
    `fields` alone (the decoded data has them too)."""

    def __init__(
        self, cls: type[EventModel], fields: tuple[str, ...], wanted: Callable[[Any], bool]
    ) -> None:
        self.type_name: str = cls.model_fields["type"].default
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
