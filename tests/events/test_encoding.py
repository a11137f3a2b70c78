"""Encoding an append: the column-by-column path gives what the event-by-event loop gives."""

from __future__ import annotations

import pytest

from events import AgentCommanded, Meta, NewEvent, RunStarted, ToolCallCompleted
from events._encoding import _encode_columns, _encode_each, encode_batch
from events.errors import EventTooLarge, InvalidEvent


def _command(n: int, meta: Meta) -> NewEvent:
    return NewEvent(AgentCommanded(agent_id="a", prompt=f"step {n} é"), meta)


_SHARED = Meta(run_id="r", agent_id="a")
_BATCHES = {
    "one meta object": [_command(n, _SHARED) for n in range(40)],
    "equal metas": [_command(n, Meta(run_id="r", agent_id="a")) for n in range(40)],
    "every meta field": [_command(n, Meta("r", "a", "p", 7, "c", "api")) for n in range(40)],
    "metas that change": [
        _command(n, Meta(run_id=f"r{n // 10}", agent_id="a" if n % 3 else None)) for n in range(40)
    ],
    "types that change": [
        NewEvent(RunStarted(run_id="r", task="t"), _SHARED) if n % 4 else _command(n, _SHARED)
        for n in range(40)
    ],
    "a large event": [
        NewEvent(ToolCallCompleted(agent_id="a", tool_use_id="t", name="r", result="x" * 700))
    ]
    * 20,
}


@pytest.mark.parametrize("batch", _BATCHES)
def test_columns_give_what_the_loop_gives(batch: str) -> None:
    events = tuple(_BATCHES[batch])
    columns = _encode_columns(events, 1_000)
    each = _encode_each("s", events, 1_000)
    assert columns is not None
    assert (columns.types, columns.schemas, columns.data, columns.metas, columns.segments) == (
        each.types,
        each.schemas,
        each.data,
        each.metas,
        each.segments,
    )


def test_uniform_only_when_every_event_has_the_same_type_and_meta() -> None:
    uniform = {name: encode_batch("s", tuple(b), 1_000).uniform for name, b in _BATCHES.items()}
    assert uniform == {
        "one meta object": ("AgentCommanded", 1, "r", "a", "", 0, "", "runtime"),
        "equal metas": ("AgentCommanded", 1, "r", "a", "", 0, "", "runtime"),
        "every meta field": ("AgentCommanded", 1, "r", "a", "p", 7, "c", "api"),
        "metas that change": None,
        "types that change": None,
        "a large event": ("ToolCallCompleted", 2, "", "", "", 0, "", "runtime"),
    }


@pytest.mark.parametrize("batch", _BATCHES)
def test_one_event_gives_what_the_loop_gives(batch: str) -> None:
    # An append of one event takes its own path (`_encode_one`): the same columns, and
    # `uniform` set, since one event has one type and one meta.
    event = _BATCHES[batch][-1]
    one = encode_batch("s", (event,), 1_000)
    each = _encode_each("s", (event,), 1_000)
    assert (one.types, one.schemas, one.data, one.metas, one.segments, one.relative) == (
        each.types,
        each.schemas,
        each.data,
        each.metas,
        each.segments,
        each.relative,
    )
    assert one.uniform == (one.types[0], one.schemas[0], *one.metas[0])


_BAD = {
    "not a NewEvent": "not an event",
    "data not an event": NewEvent(Meta(), Meta()),  # type: ignore[arg-type]
    "an empty run id": NewEvent(AgentCommanded(agent_id="a", prompt="p"), Meta(run_id="")),
    "a cause of -1 with nothing before it": NewEvent(
        AgentCommanded(agent_id="a", prompt="p"), Meta(causation_id=-1)
    ),
    "an unknown source": NewEvent(
        AgentCommanded(agent_id="a", prompt="p"),
        Meta(source="elsewhere"),  # type: ignore[arg-type]
    ),
    "too large": NewEvent(AgentCommanded(agent_id="a", prompt="x" * 2_000)),
}


@pytest.mark.parametrize("bad", _BAD)
def test_one_bad_event_raises_what_the_loop_raises(bad: str) -> None:
    event = _BAD[bad]
    with pytest.raises((InvalidEvent, EventTooLarge)) as alone:
        encode_batch("s", (event,), 1_000)  # type: ignore[arg-type]
    with pytest.raises((InvalidEvent, EventTooLarge)) as in_loop:
        _encode_each("s", (event,), 1_000)  # type: ignore[arg-type]
    assert type(alone.value) is type(in_loop.value)
    assert str(alone.value) == str(in_loop.value)
