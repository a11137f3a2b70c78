"""A batch of events as spans at once: what `fleet otel export` sends.

`map_events` folds the events with one `SpanMapper` and closes what is still
open at the end (`_mapping.py` note 2). It pauses the cyclic garbage collector
while it folds (it has no await): tens of thousands of new span records
otherwise trigger full collections over every event held, and the fold took
three times as long.
"""

from __future__ import annotations

from collections.abc import Iterable

from events import RecordedEvent, gc_paused

from ._mapping import DEFAULT_MAX_CONTENT_CHARS, SpanMapper
from ._records import SpanRecord

__all__ = ["map_events"]


def map_events(
    events: Iterable[RecordedEvent],
    *,
    content: bool = False,
    max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
) -> list[SpanRecord]:
    """Every span of `events` (in log order), the unfinished ones closed at the end."""
    mapper = SpanMapper(content=content, max_content_chars=max_content_chars)
    spans: list[SpanRecord] = []
    with gc_paused():  # below
        for event in events:
            spans.extend(mapper.apply(event))
        spans.extend(mapper.flush())
    return spans
