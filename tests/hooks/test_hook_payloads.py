"""Payloads fleet sends to hooks: Claude Code's field names plus fleet's ids and usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import hooks
from events import Usage
from hooks import (
    PAYLOAD_MODELS,
    FleetUsage,
    HookPoint,
    PayloadInvalid,
    UnknownHookPoint,
    build_payload,
)

FIXTURES = Path(__file__).parent / "fixtures"
COMMON = {"session_id", "transcript_path", "cwd", "permission_mode", "hook_event_name"}
FLEET = {"fleet_agent_id", "fleet_parent_id", "fleet_run_id"}

POINT_FIELDS: dict[str, dict[str, Any]] = {
    "SessionStart": {"source": "startup", "model": "claude-sonnet-4-5"},
    "UserPromptSubmit": {"prompt": "scout the repo"},
    "PreToolUse": {
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
        "tool_use_id": "t1",
    },
    "PostToolUse": {
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
        "tool_use_id": "t1",
        "tool_response": {"stdout": "a\n", "stderr": "", "interrupted": False, "isImage": False},
    },
    "PermissionRequest": {
        "tool_name": "Bash",
        "tool_input": {"command": "rm -rf dist"},
        "permission_suggestions": [{"type": "addRules", "behavior": "allow"}],
        "fleet_tool_use_id": "t1",
    },
    "PostToolUseFailure": {
        "tool_name": "Bash",
        "tool_input": {"command": "false"},
        "tool_use_id": "t1",
        "error": "exit code 1",
        "is_interrupt": False,
    },
    "Notification": {"message": "waiting on 2 agents", "notification_type": "idle_prompt"},
    "Stop": {"stop_hook_active": False},
    "SubagentStart": {"subagent_id": "agent-2", "agent_type": "scout"},
    "SubagentStop": {"subagent_id": "agent-2", "agent_type": "scout", "stop_hook_active": False},
    "PreCompact": {"trigger": "auto", "custom_instructions": None},
    "SessionEnd": {"reason": "other"},
}


def build(point: str, **extra: Any) -> dict[str, Any]:
    fields = {**POINT_FIELDS[point], **extra}
    return build_payload(
        point,
        session_id="sess-1",
        cwd="/ws",
        agent_id="agent-1",
        parent_id="orch",
        run_id="run-1",
        **fields,
    )


@pytest.mark.parametrize("point", [p.value for p in HookPoint])
def test_every_point_has_claude_codes_fields_and_fleets_ids(point: str) -> None:
    payload = build(point)
    assert payload["hook_event_name"] == point
    assert payload["session_id"] == "sess-1"
    assert payload["fleet_agent_id"] == "agent-1"
    assert payload["fleet_parent_id"] == "orch"
    assert payload["fleet_run_id"] == "run-1"
    assert payload.keys() >= COMMON | FLEET
    json.dumps(payload)  # JSON-ready as is
    # Every Claude Code field of the recorded payload of this point is present too.
    recorded = json.loads((FIXTURES / f"{point}.json").read_text())
    assert recorded.keys() <= payload.keys()


def test_subagent_points_name_the_subagent_in_agent_id() -> None:
    payload = build("SubagentStart")
    assert payload["agent_id"] == "agent-2"
    assert payload["agent_type"] == "scout"
    assert payload["fleet_agent_id"] == "agent-1"


def test_tool_points_carry_usage_and_cost_so_far() -> None:
    usage = Usage(input_tokens=1200, output_tokens=300, cache_read_input_tokens=50)
    payload = build("PreToolUse", usage=usage, cost_usd=0.0123)
    assert payload["fleet_usage"] == {
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 50,
        "cost_usd": 0.0123,
    }
    as_dict = build("PostToolUse", usage={"input_tokens": 5, "cost_usd": 0.5})
    assert as_dict["fleet_usage"]["cost_usd"] == 0.5
    typed = build("PostToolUseFailure", usage=FleetUsage(output_tokens=7))
    assert typed["fleet_usage"]["output_tokens"] == 7
    assert build("PreToolUse")["fleet_usage"] is None


def test_the_arguments_are_not_mutated() -> None:
    tool_input = {"command": "ls"}
    usage = {"input_tokens": 5}
    build("PreToolUse", tool_input=tool_input, usage=usage, cost_usd=1.0)
    assert tool_input == {"command": "ls"}
    assert usage == {"input_tokens": 5}


@pytest.mark.parametrize(
    ("point", "extra", "field"),
    [
        ("PreToolUse", {"tool_input": "ls"}, "tool_input"),
        ("PostToolUseFailure", {"error": None}, "error"),
        ("Stop", {"stop_hook_active": "no"}, "stop_hook_active"),
        ("Stop", {"tool_name": "x"}, "tool_name"),
        ("SessionStart", {"usage": {"input_tokens": 1}}, "usage"),
    ],
)
def test_a_wrong_payload_field_is_refused(point: str, extra: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadInvalid) as info:
        build(point, **extra)
    assert info.value.field == field
    assert info.value.point == point


def test_a_missing_required_field_is_refused() -> None:
    with pytest.raises(PayloadInvalid, match="prompt"):
        build_payload("UserPromptSubmit", session_id="s")


def test_an_unknown_point_is_refused() -> None:
    with pytest.raises(UnknownHookPoint, match="PreToolUze"):
        build_payload("PreToolUze", session_id="s")


def test_every_point_has_a_typed_model() -> None:
    assert set(PAYLOAD_MODELS) == set(HookPoint)


def test_the_public_surface_is_exactly_all() -> None:
    public = {
        name
        for name, value in vars(hooks).items()
        if not name.startswith("_")
        and name != "annotations"  # from __future__
        and getattr(value, "__name__", "") != f"hooks.{name}"  # submodules (errors)
    }
    assert public == set(hooks.__all__)
