"""SSE frames: each event encoded once into the bytes every subscriber is sent, and the ring
of recent frames the broadcaster keeps (see `_broadcast.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from events import EventFilter, RecordedEvent, encode_event

__all__ = ["Frame", "Ring", "sse_frame"]


def sse_frame(event: RecordedEvent) -> bytes:
    """The event's SSE frame: `id` is its position, `data` its JSON (on one line)."""
    return b"id: %d\ndata: %s\n\n" % (event.position, encode_event(event))


@dataclass(frozen=True, slots=True)
class Frame:
    """One event's encoded SSE frame, shared by every subscriber, and what filters look at.

    Only the filter keys are kept, not the decoded event: a ring of frames is a
    few small objects each (less memory, and less for the garbage collector).
    """

    position: int
    stream_id: str
    type: str
    run_id: str | None
    agent_id: str | None
    data: bytes

    @classmethod
    def of(cls, event: RecordedEvent) -> Frame:
        """Encode `event` (once)."""
        meta = event.meta
        return cls(
            event.position, event.stream_id, event.type, meta.run_id, meta.agent_id,
            sse_frame(event),
        )  # fmt: skip

    def matches(self, where: EventFilter) -> bool:
        """The test `EventFilter.matches` makes, on the frame's keys."""
        return (
            (where.stream_ids is None or self.stream_id in where.stream_ids)
            and (where.types is None or self.type in where.types)
            and (where.run_id is None or self.run_id == where.run_id)
            and (where.agent_id is None or self.agent_id == where.agent_id)
        )


class Ring:
    """The last frames (at most `capacity`, at most `max_bytes` of data) in a fixed list
    indexed by position: O(1) append and slice.

    It holds the positions `first..last`; empty, `first == last + 1`, and `last`
    is where it starts (`reset(head)`): it does not reach back before that, so
    a reader from an earlier position reads the log (a ring that started
    empty at head 32 must not answer "nothing after 0").

    It also counts the bytes of every frame appended (`total`) and where each
    held frame starts in that count, so the bytes after any position it holds
    are one subtraction (`bytes_after`): how much a subscriber has yet to take.
    """

    __slots__ = ("_bytes", "_capacity", "_items", "_max_bytes", "_starts", "first", "last", "total")

    def __init__(self, capacity: int, max_bytes: int, start: int = 0) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._items: list[Frame | None] = [None] * capacity
        self._starts = [0] * capacity  # `total` before each held frame was appended
        self._bytes = 0
        self.total = 0
        self.first = start + 1  # the oldest position held (last + 1: empty)
        self.last = start

    def reset(self, start: int) -> None:
        """Empty, at position `start` (the log's head)."""
        self._items = [None] * self._capacity
        self._bytes = 0
        self.first, self.last = start + 1, start

    @property
    def held_bytes(self) -> int:
        """Bytes of the frames held now (at most `max_bytes`, or one frame larger than it)."""
        return self._bytes

    def append(self, frame: Frame) -> None:
        position = frame.position
        if position != self.last + 1:
            self.reset(position - 1)  # a gap (never from a gap-free log): start over
        elif position - self.first >= self._capacity:
            self._drop_oldest()
        index = position % self._capacity
        self._items[index] = frame
        self._starts[index] = self.total
        self.total += len(frame.data)
        self._bytes += len(frame.data)
        self.last = position
        while self._bytes > self._max_bytes and self.first < self.last:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        index = self.first % self._capacity
        oldest = self._items[index]
        if oldest is not None:
            self._bytes -= len(oldest.data)
            self._items[index] = None
        self.first += 1

    def reaches(self, position: int) -> bool:
        """True if every frame after `position` (up to `last`) is held."""
        return position + 1 >= self.first

    def after(self, position: int) -> list[Frame] | None:
        """Frames after `position` up to the last; None when the ring does not reach back."""
        if not self.reaches(position):
            return None
        if position >= self.last:
            return []
        a, b = (position + 1) % self._capacity, self.last % self._capacity + 1
        items = self._items[a:b] if a < b else self._items[a:] + self._items[:b]
        return items  # type: ignore[return-value]

    def bytes_after(self, position: int) -> int | None:
        """Bytes of the frames after `position`; None when the ring does not reach back."""
        if not self.reaches(position):
            return None
        if position >= self.last:
            return 0
        return self.total - self._starts[(position + 1) % self._capacity]

    def take(
        self, position: int, max_bytes: int, where: EventFilter | None
    ) -> tuple[list[Frame], int] | None:
        """The matching frames after `position`, up to about `max_bytes` of them (at least one
        when any matches), and the last position looked at; None when the ring does not
        reach back."""
        if not self.reaches(position):
            return None
        items, capacity = self._items, self._capacity
        taken: list[Frame] = []
        size = 0
        at = position
        while at < self.last and size < max_bytes:
            at += 1
            frame = items[at % capacity]
            assert frame is not None
            if where is None or frame.matches(where):
                taken.append(frame)
                size += len(frame.data)
        return taken, max(at, position)
