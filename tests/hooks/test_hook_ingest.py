"""Ingest: payloads posted by a real Claude Code session's hooks, checked before any write."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp

from events import ExternalHookReceived
from hooks import (
    DEFAULT_MAX_INGEST_BYTES,
    HookPoint,
    IngestError,
    IngestTooLarge,
    parse_external,
)

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = sorted(FIXTURES.glob("*.json"))

Serve = Callable[[ASGIApp], AbstractAsyncContextManager[str]]


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())  # type: ignore[no-any-return]


def test_there_is_a_recorded_payload_for_every_point() -> None:
    assert {p.stem for p in RECORDED} >= {p.value for p in HookPoint}


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_claude_code_payloads_are_accepted_as_they_are(path: Path) -> None:
    raw = path.read_bytes()
    data = parse_external(raw, source_app="shop")
    assert isinstance(data, ExternalHookReceived)
    assert data.source_app == "shop"
    assert data.hook_event_name == path.stem
    assert data.session_id == "5f1c2a9e-8d1b-4a57-9a0e-3c6f2b7d4e11"
    assert data.payload == json.loads(raw)  # kept raw, unknown fields included


def test_an_unknown_future_point_is_kept() -> None:
    payload = {**fixture("Stop"), "hook_event_name": "TeamStandup", "standup": {"mood": 3}}
    data = parse_external(json.dumps(payload))
    assert data.hook_event_name == "TeamStandup"
    assert data.payload["standup"] == {"mood": 3}
    assert data.source_app == "claude-code"


def test_a_dict_is_accepted_and_copied() -> None:
    payload = fixture("PreToolUse")
    data = parse_external(payload)
    assert data.payload == payload
    data.payload["tool_input"]["command"] = "changed"
    assert payload["tool_input"]["command"] == "npm test"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"\xff\xfe{}", None, "not UTF-8"),
        (b"[1, 2]", None, "expected a JSON object, got an array"),
        (b'"PreToolUse"', None, "expected a JSON object, got a string"),
        ([{"hook_event_name": "Stop"}], None, "got an array"),  # already parsed
        (None, None, "got null"),
        (b'{"session_id": "s"}', "hook_event_name", "missing"),
        (b'{"hook_event_name": 7, "session_id": "s"}', "hook_event_name", "got 7"),
        (b'{"hook_event_name": "Stop"}', "session_id", "missing"),
        (b'{"hook_event_name": "Stop", "session_id": " "}', "session_id", "non-empty"),
        ("[" * 100_000, None, "nested too deeply"),
    ],
)
def test_a_malformed_body_is_refused_with_a_clear_error(
    body: object, field: str | None, words: str
) -> None:
    with pytest.raises(IngestError) as info:
        parse_external(body)
    assert info.value.field == field
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("point", "change", "field"),
    [
        ("PreToolUse", {"tool_input": "npm test"}, "tool_input"),
        ("PreToolUse", {"tool_name": ["Bash"]}, "tool_name"),
        ("PostToolUseFailure", {"is_interrupt": "false"}, "is_interrupt"),
        ("Stop", {"stop_hook_active": 1}, "stop_hook_active"),
        ("SubagentStart", {"agent_id": 42}, "agent_id"),
        ("Notification", {"message": {"text": "hi"}}, "message"),
        ("PreCompact", {"custom_instructions": 3}, "custom_instructions"),
        ("SessionStart", {"cwd": None, "permission_mode": 5}, "permission_mode"),
        ("TeamStandup", {"transcript_path": 12}, "transcript_path"),  # common fields, any point
    ],
)
def test_a_known_field_of_the_wrong_type_is_refused(
    point: str, change: dict[str, Any], field: str
) -> None:
    base = fixture(point) if (FIXTURES / f"{point}.json").exists() else fixture("Stop")
    payload = {**base, "hook_event_name": point, **change}
    with pytest.raises(IngestError) as info:
        parse_external(json.dumps(payload).encode())
    assert info.value.field == field


def test_a_missing_optional_field_is_fine() -> None:
    """Claude Code versions differ: only hook_event_name and session_id are required."""
    data = parse_external(b'{"hook_event_name": "PreToolUse", "session_id": "s"}')
    assert data.payload == {"hook_event_name": "PreToolUse", "session_id": "s"}


def test_a_payload_over_the_limit_is_refused_before_parsing() -> None:
    payload = {**fixture("PostToolUse"), "tool_response": {"content": "x" * 2000}}
    body = json.dumps(payload).encode()
    with pytest.raises(IngestTooLarge) as info:
        parse_external(body, max_bytes=1000)
    assert (info.value.size, info.value.limit) == (len(body), 1000)
    with pytest.raises(IngestTooLarge):
        parse_external(payload, max_bytes=1000)  # a dict is measured as JSON
    assert DEFAULT_MAX_INGEST_BYTES == 512 * 1024


@pytest.mark.parametrize("app", ["", "a b", "x" * 65, "-lead", "é"])
def test_a_bad_source_app_is_refused(app: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_external(fixture("Stop"), source_app=app)
    assert info.value.field == "source_app"


def test_a_dict_that_is_not_json_is_refused() -> None:
    with pytest.raises(IngestError, match="not JSON-serializable"):
        parse_external({"hook_event_name": "Stop", "session_id": "s", "when": object()})
