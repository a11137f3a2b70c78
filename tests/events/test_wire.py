"""`encode_event`: the one wire JSON of an event (API pages, SSE frames, CLI --json, exports)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from events import (
    AgentCommanded,
    InvalidEvent,
    Meta,
    RecordedEvent,
    ToolCallCompleted,
    UnknownEvent,
    encode_event,
)

AT = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


def recorded(data: object, *, position: int = 12, meta: Meta | None = None) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream_id="agent-é",
        version=3,
        data=data,  # type: ignore[arg-type]
        meta=meta or Meta(run_id="r1", agent_id="a1", causation_id=11),
        recorded_at=AT,
    )


def test_an_event_is_one_line_of_compact_utf8_json_in_the_documented_order() -> None:
    event = recorded(AgentCommanded(agent_id="a1", prompt='héllo "q"\nnext'))

    assert (
        encode_event(event)
        == (
            '{"position":12,"stream_id":"agent-é","version":3,"type":"AgentCommanded",'
            '"data":{"type":"AgentCommanded","agent_id":"a1","prompt":"héllo \\"q\\"\\nnext",'
            '"by":"user"},"meta":{"run_id":"r1","agent_id":"a1","parent_id":null,'
            '"causation_id":11,"correlation_id":null,"source":"runtime"},'
            '"recorded_at":"2026-03-02T09:00:00.123456+00:00"}'
        ).encode()
    )


def test_with_schema_the_data_s_schema_version_follows_the_type() -> None:
    event = recorded(ToolCallCompleted(agent_id="a1", tool_use_id="t", name="read"))

    value = json.loads(encode_event(event, schema=True))

    assert list(value) == [
        "position", "stream_id", "version", "type", "schema", "data", "meta", "recorded_at",
    ]  # fmt: skip
    assert value["schema"] == ToolCallCompleted.SCHEMA_VERSION == 2
    assert {k: v for k, v in value.items() if k != "schema"} == json.loads(encode_event(event))


def test_the_data_is_the_model_s_json_and_to_json_dict_is_the_same_json() -> None:
    data = ToolCallCompleted(
        agent_id="a1", tool_use_id="t", name="grep", result="∑ 3 matches", duration_ms=1.5
    )
    event = recorded(data)

    assert json.loads(encode_event(event))["data"] == data.model_dump(mode="json")
    assert event.to_json_dict() == json.loads(encode_event(event))


def test_events_that_share_meta_and_time_are_each_encoded_whole() -> None:
    """The encoder reuses encodings of shared parts; each event still says its own."""
    meta = Meta(run_id="r1")
    first = recorded(AgentCommanded(agent_id="a", prompt="1"), position=1, meta=meta)
    second = recorded(AgentCommanded(agent_id="b", prompt="2"), position=2, meta=meta)
    other = recorded(AgentCommanded(agent_id="c", prompt="3"), position=3, meta=Meta(run_id="r2"))

    lines = [json.loads(encode_event(e)) for e in (first, second, other, first)]

    assert [(v["position"], v["data"]["agent_id"], v["meta"]["run_id"]) for v in lines] == [
        (1, "a", "r1"),
        (2, "b", "r1"),
        (3, "c", "r2"),
        (1, "a", "r1"),
    ]


def test_an_unknown_type_is_written_with_its_raw_data_but_never_exported() -> None:
    event = recorded(UnknownEvent(type="Teleported", raw={"to": "mars"}), position=2)

    value = json.loads(encode_event(event))
    assert (value["type"], value["data"]) == ("Teleported", {"to": "mars"})
    with pytest.raises(InvalidEvent, match="position 2 has a type this fleet does not know"):
        encode_event(event, schema=True)
