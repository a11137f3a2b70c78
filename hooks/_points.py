"""Hook points and their payloads, with Claude Code's names and field names.

Every payload fleet sends carries Claude Code's common fields (`session_id`,
`transcript_path`, `cwd`, `permission_mode`, `hook_event_name`) and the point's
own fields, so a hook script written for Claude Code runs unchanged. Fleet adds
`fleet_agent_id`, `fleet_parent_id` and `fleet_run_id` to every payload, and
`fleet_usage` (tokens and cost so far) to the tool points.

`DOCUMENTED_EVENTS` lists every hook event Claude Code's hooks reference
documents; `HookPoint` is the subset fleet fires (the rest load from settings
and are kept, never run).

Notes (do not fix without reading this):
1. Open enumerations (`source`, `trigger`, `reason`, `notification_type`,
   `permission_mode`) are plain `str`: Claude Code adds values over time, and
   ingest must keep payloads from newer versions.
2. `agent_id` / `agent_type` keep Claude Code's meaning (the *subagent* at the
   Subagent* points); the agent that fired a hook is always `fleet_agent_id`.
   That is why `build_payload()` takes `agent_id=` for `fleet_agent_id` and
   `subagent_id=` for `agent_id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events import Usage

from .errors import PayloadInvalid, UnknownHookPoint

__all__ = [
    "BLOCKING_POINTS",
    "DOCUMENTED_EVENTS",
    "IF_POINTS",
    "MATCHER_FIELDS",
    "PAYLOAD_MODELS",
    "TOOL_POINTS",
    "FleetUsage",
    "HookPayload",
    "HookPoint",
    "NotificationPayload",
    "PermissionRequestPayload",
    "PostToolUseFailurePayload",
    "PostToolUsePayload",
    "PreCompactPayload",
    "PreToolUsePayload",
    "SessionEndPayload",
    "SessionStartPayload",
    "StopPayload",
    "SubagentStartPayload",
    "SubagentStopPayload",
    "UserPromptSubmitPayload",
    "build_payload",
    "hook_point",
]


class HookPoint(StrEnum):
    """A lifecycle point at which hooks run (Claude Code's event names)."""

    SessionStart = "SessionStart"
    UserPromptSubmit = "UserPromptSubmit"
    PreToolUse = "PreToolUse"
    PermissionRequest = "PermissionRequest"
    PostToolUse = "PostToolUse"
    PostToolUseFailure = "PostToolUseFailure"
    Notification = "Notification"
    Stop = "Stop"
    SubagentStart = "SubagentStart"
    SubagentStop = "SubagentStop"
    PreCompact = "PreCompact"
    SessionEnd = "SessionEnd"


DOCUMENTED_EVENTS: tuple[str, ...] = (
    "SessionStart",
    "Setup",
    "InstructionsLoaded",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "MessageDisplay",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "PermissionDenied",
    "Notification",
    "SubagentStart",
    "SubagentStop",
    "TaskCreated",
    "TaskCompleted",
    "Stop",
    "StopFailure",
    "TeammateIdle",
    "ConfigChange",
    "CwdChanged",
    "DirectoryAdded",
    "FileChanged",
    "WorktreeCreate",
    "WorktreeRemove",
    "PreCompact",
    "PostCompact",
    "PreModelSwitch",
    "PostModelSwitch",
    "SessionEnd",
    "Elicitation",
    "ElicitationResult",
)
"""Every hook event Claude Code's hooks reference documents (33, as of Claude Code 2.1.3xx)."""

TOOL_POINTS: frozenset[HookPoint] = frozenset(
    {
        HookPoint.PreToolUse,
        HookPoint.PermissionRequest,
        HookPoint.PostToolUse,
        HookPoint.PostToolUseFailure,
    }
)
"""Points that fire around a tool call (their payloads carry the tool and `fleet_usage`)."""

IF_POINTS: frozenset[str] = frozenset(
    {"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "PermissionDenied"}
)
"""The events at which a handler's `if` rule is evaluated; elsewhere such a handler never runs."""

BLOCKING_POINTS: frozenset[HookPoint] = frozenset(
    {
        HookPoint.PreToolUse,  # the tool is not run; the reason is the tool's error
        HookPoint.PermissionRequest,  # the approval is denied
        HookPoint.PostToolUse,  # the reason is shown to the model beside the result
        HookPoint.PostToolUseFailure,  # the reason is shown to the model
        HookPoint.UserPromptSubmit,  # the prompt is dropped
        HookPoint.Stop,  # the agent does not stop: the reason is its next instruction
        HookPoint.SubagentStop,  # likewise for a subagent
        HookPoint.PreCompact,  # the compaction does not happen
    }
)
"""Points where a hook may block (exit 2, decision "block", permission "deny").

Elsewhere (SessionStart, SessionEnd, Notification, SubagentStart) a block cannot
mean anything, so, as in Claude Code, it is a non-blocking error.
"""

MATCHER_FIELDS: Mapping[HookPoint, str] = {
    HookPoint.PreToolUse: "tool_name",
    HookPoint.PermissionRequest: "tool_name",
    HookPoint.PostToolUse: "tool_name",
    HookPoint.PostToolUseFailure: "tool_name",
    HookPoint.SessionStart: "source",
    HookPoint.PreCompact: "trigger",
    HookPoint.SubagentStart: "agent_type",
    HookPoint.SubagentStop: "agent_type",
    HookPoint.Notification: "notification_type",
    HookPoint.SessionEnd: "reason",
}
"""The payload field a matcher is tested against, per point (Claude Code's choice).

At the points missing here (UserPromptSubmit, Stop) a matcher is ignored.
"""

_POINT_NAMES = tuple(p.value for p in HookPoint)


def hook_point(point: str) -> HookPoint:
    """The `HookPoint` named `point`; raises `UnknownHookPoint` for any other name."""
    try:
        return HookPoint(point)
    except ValueError:
        raise UnknownHookPoint(point, _POINT_NAMES) from None


class FleetUsage(BaseModel):
    """Tokens and cost an agent has used so far (fleet's addition to tool payloads)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0


class HookPayload(BaseModel):
    """The fields every payload has: Claude Code's common ones and fleet's ids."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    session_id: str
    transcript_path: str = ""
    cwd: str = ""
    permission_mode: str = "default"
    hook_event_name: str
    fleet_agent_id: str | None = None
    fleet_parent_id: str | None = None
    fleet_run_id: str | None = None


class SessionStartPayload(HookPayload):
    """An agent's session began (`source`: startup, resume, clear, compact)."""

    hook_event_name: Literal["SessionStart"] = "SessionStart"
    source: str = "startup"
    model: str = ""
    agent_type: str | None = None


class UserPromptSubmitPayload(HookPayload):
    """A prompt (a user's task or an orchestrator's command) reached an agent."""

    hook_event_name: Literal["UserPromptSubmit"] = "UserPromptSubmit"
    prompt: str


class _ToolPayload(HookPayload):
    tool_name: str
    tool_input: dict[str, Any]
    tool_use_id: str
    fleet_usage: FleetUsage | None = None


class PreToolUsePayload(_ToolPayload):
    """The model asked for a tool call; it has not run yet."""

    hook_event_name: Literal["PreToolUse"] = "PreToolUse"


class PermissionRequestPayload(HookPayload):
    """A tool call needs a person's approval (a PreToolUse hook answered "ask").

    As in Claude Code there is no `tool_use_id`; fleet names the call in
    `fleet_tool_use_id`.
    """

    hook_event_name: Literal["PermissionRequest"] = "PermissionRequest"
    tool_name: str
    tool_input: dict[str, Any]
    permission_suggestions: list[dict[str, Any]] = Field(default_factory=list)
    fleet_tool_use_id: str | None = None
    fleet_usage: FleetUsage | None = None


class PostToolUsePayload(_ToolPayload):
    """A tool call succeeded; `tool_response` is its result (the tool's output object)."""

    hook_event_name: Literal["PostToolUse"] = "PostToolUse"
    tool_response: Any = None
    duration_ms: float | None = None


class PostToolUseFailurePayload(_ToolPayload):
    """A tool call failed; `error` says why, `is_interrupt` if it was cut short."""

    hook_event_name: Literal["PostToolUseFailure"] = "PostToolUseFailure"
    error: str
    is_interrupt: bool = False
    duration_ms: float | None = None


class NotificationPayload(HookPayload):
    """An agent has something to tell a human (waiting, idle, a budget warning)."""

    hook_event_name: Literal["Notification"] = "Notification"
    message: str
    title: str | None = None
    notification_type: str | None = None


class StopPayload(HookPayload):
    """An agent is about to end its turn."""

    hook_event_name: Literal["Stop"] = "Stop"
    stop_hook_active: bool = False
    last_assistant_message: str | None = None


class SubagentStartPayload(HookPayload):
    """An agent started a subagent (`agent_id`, `agent_type` name the subagent)."""

    hook_event_name: Literal["SubagentStart"] = "SubagentStart"
    agent_id: str
    agent_type: str


class SubagentStopPayload(HookPayload):
    """A subagent is about to end its turn."""

    hook_event_name: Literal["SubagentStop"] = "SubagentStop"
    agent_id: str
    agent_type: str
    stop_hook_active: bool = False
    agent_transcript_path: str | None = None
    last_assistant_message: str | None = None


class PreCompactPayload(HookPayload):
    """An agent's conversation is about to be compacted (`trigger`: manual or auto)."""

    hook_event_name: Literal["PreCompact"] = "PreCompact"
    trigger: str = "auto"
    custom_instructions: str | None = None


class SessionEndPayload(HookPayload):
    """An agent's session ended.

    `reason` is one of Claude Code's (clear, resume, logout, prompt_input_exit,
    bypass_permissions_disabled, other): a fleet agent ends as "other", and
    `fleet_reason` says how ("delete", "close").
    """

    hook_event_name: Literal["SessionEnd"] = "SessionEnd"
    reason: str = "other"
    fleet_reason: str | None = None


PAYLOAD_MODELS: Mapping[HookPoint, type[HookPayload]] = {
    HookPoint.SessionStart: SessionStartPayload,
    HookPoint.UserPromptSubmit: UserPromptSubmitPayload,
    HookPoint.PreToolUse: PreToolUsePayload,
    HookPoint.PermissionRequest: PermissionRequestPayload,
    HookPoint.PostToolUse: PostToolUsePayload,
    HookPoint.PostToolUseFailure: PostToolUseFailurePayload,
    HookPoint.Notification: NotificationPayload,
    HookPoint.Stop: StopPayload,
    HookPoint.SubagentStart: SubagentStartPayload,
    HookPoint.SubagentStop: SubagentStopPayload,
    HookPoint.PreCompact: PreCompactPayload,
    HookPoint.SessionEnd: SessionEndPayload,
}
"""The typed payload model of each point."""


def _usage(usage: FleetUsage | Usage | Mapping[str, Any] | None, cost_usd: float | None) -> Any:
    if usage is None:
        return None if cost_usd is None else {"cost_usd": cost_usd}
    if isinstance(usage, FleetUsage):
        return usage if cost_usd is None else usage.model_copy(update={"cost_usd": cost_usd})
    if isinstance(usage, Usage):
        return FleetUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens,
            cost_usd=cost_usd or 0.0,
        )
    merged = dict(usage)
    if cost_usd is not None:
        merged["cost_usd"] = cost_usd
    return merged


def build_payload(
    point: str,
    *,
    session_id: str,
    cwd: str = "",
    agent_id: str | None = None,
    parent_id: str | None = None,
    run_id: str | None = None,
    usage: FleetUsage | Usage | Mapping[str, Any] | None = None,
    cost_usd: float | None = None,
    subagent_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The payload of one hook point as a JSON-ready dict with Claude Code's field names.

    Args:
        point: a `HookPoint` (or its name).
        agent_id, parent_id, run_id: the firing agent, its parent and its run
            (sent as `fleet_agent_id`, `fleet_parent_id`, `fleet_run_id`).
        usage, cost_usd: tokens and cost so far (sent as `fleet_usage`, tool points only);
            an `events.Usage` is converted, `cost_usd` overrides the usage's cost.
        subagent_id: the subagent's id at SubagentStart/SubagentStop (sent as `agent_id`).
        **fields: the point's own fields, by Claude Code's names (`tool_name`,
            `tool_input`, `tool_use_id`, `tool_response`, `error`, `prompt`, ...).

    Raises:
        UnknownHookPoint: `point` is not a hook point.
        PayloadInvalid: a required field is missing, one has the wrong type, or a
            field does not belong to the point.

    The arguments are never mutated.
    """
    hp = hook_point(point)
    model = PAYLOAD_MODELS[hp]
    data: dict[str, Any] = {
        "session_id": session_id,
        "cwd": cwd,
        "fleet_agent_id": agent_id,
        "fleet_parent_id": parent_id,
        "fleet_run_id": run_id,
        **fields,
    }
    if hp in TOOL_POINTS:
        data["fleet_usage"] = _usage(usage, cost_usd)
    elif usage is not None or cost_usd is not None:
        raise PayloadInvalid(hp.value, "usage", "only the tool points carry fleet_usage")
    if subagent_id is not None:
        data["agent_id"] = subagent_id
    try:
        payload = model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(part) for part in err["loc"]) or "payload"
        raise PayloadInvalid(hp.value, field, err["msg"]) from None
    return payload.model_dump(mode="json")
