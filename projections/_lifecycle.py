"""Agent status rules and the reading of external (Claude Code) hook payloads.

Shared by the agents, fleet and graph projections so the three agree on what
an agent's status is and what an external session did.

Status rules: AgentCreated -> created, AgentCommanded -> working,
AgentWaiting -> waiting, AgentWoke -> working, ApprovalRequested -> waiting
(for a person's answer), ApprovalDecided -> working (only from waiting),
AgentCompleted -> completed, AgentFailed -> failed, AgentDeleted -> deleted;
deleted is final.

External sessions (ExternalHookReceived) become agents `ext-<session_id>`
with role "external": first sight -> created, UserPromptSubmit / PreToolUse /
PostToolUse -> working, Notification (Claude Code asks the user something)
-> waiting, Stop -> completed (a later prompt makes it work again),
StopFailure (an API error ended the turn) -> failed, its error Claude Code's
`error` and message, SessionEnd -> completed and finished (a failed session
stays failed). Its summary is the last answer (`last_assistant_message` at
Stop, a subagent's at its SubagentStop). Files come from the tool input of
Read / NotebookRead (consumed) and Write / Edit / MultiEdit / NotebookEdit
(produced), relative paths resolved against the payload's `cwd`.

A payload with an `agent_id` (Claude Code sends one from a subagent: its
SubagentStart and SubagentStop, and every hook of the subagent's own tool
calls) is about that subagent: an agent of its own,
`ext-<session_id>-<agent_id>`, whose parent is the session's agent and whose
name is its `agent_type` ("Explore/ab335d47"). SubagentStart -> working,
SubagentStop -> completed.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    AgentWaiting,
    AgentWoke,
    ApprovalRequested,
    EventModel,
    ExternalHookReceived,
)

__all__ = [
    "ACTIVE_STATUSES",
    "EXTERNAL_ROLE",
    "JUDGED_STATUSES",
    "STATUSES",
    "STATUS_AFTER",
    "ExternalFacts",
    "external_agent_id",
    "external_facts",
    "external_status",
    "external_subagent_id",
    "next_status",
    "resolve_path",
]

STATUSES = ("created", "working", "waiting", "completed", "failed", "deleted")
ACTIVE_STATUSES = frozenset({"created", "working", "waiting"})
JUDGED_STATUSES = ("interrupted", "stale")
"""An external agent's status judged now, never in the log: its process is gone, or no hook
came for long (`projections/_liveness.py`); the API and the CLI answer them for a view now."""

STATUS_AFTER: dict[type[EventModel], str] = {
    AgentCreated: "created",
    AgentCommanded: "working",
    AgentWaiting: "waiting",
    AgentWoke: "working",
    ApprovalRequested: "waiting",
    AgentCompleted: "completed",
    AgentFailed: "failed",
    AgentDeleted: "deleted",
}

EXTERNAL_ROLE = "external"

_EXTERNAL_STATUS: dict[str, str] = {
    "UserPromptSubmit": "working",
    "PreToolUse": "working",
    "PostToolUse": "working",
    "PostToolUseFailure": "working",
    "Notification": "waiting",
    "Stop": "completed",
    "StopFailure": "failed",
    "SessionEnd": "completed",
}
# Only a payload that names its subagent moves it (older Claude Code sent SubagentStop bare).
_SUBAGENT_STATUS: dict[str, str] = {
    **_EXTERNAL_STATUS,
    "SubagentStart": "working",
    "SubagentStop": "completed",
}
_READ_TOOLS = {"Read": "file_path", "NotebookRead": "notebook_path"}
_WRITE_TOOLS = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}


def next_status(current: str, new: str) -> str:
    """The status after a transition to `new`: a deleted agent stays deleted."""
    return current if current == "deleted" else new


def external_status(current: str, facts: ExternalFacts) -> str:
    """The status of an external agent after a payload: its end keeps a failure."""
    assert facts.status is not None
    if facts.ended and current == "failed":
        return current
    return next_status(current, facts.status)


def external_agent_id(session_id: str) -> str:
    """The agent id of an external session."""
    return f"ext-{session_id}"


def external_subagent_id(session_id: str, agent_id: str) -> str:
    """The agent id of a subagent (`agent_id` in Claude Code's payloads) of an external session."""
    return f"ext-{session_id}-{agent_id}"


def resolve_path(path: str, base: str | None) -> str:
    """`path` made absolute against `base` (when relative and a base is known), normalized."""
    if base and not path.startswith("/"):
        path = f"{base.rstrip('/')}/{path}"
    # normpath costs half a microsecond: only for paths it would change.
    if path and ("/." in path or "//" in path or path.startswith(".") or path.endswith("/")):
        return posixpath.normpath(path)
    return path


@dataclass(frozen=True, slots=True)
class ExternalFacts:
    """What one external hook payload means for the read models."""

    agent_id: str
    # The session's agent when this payload is a subagent's, else None.
    parent_id: str | None
    # Claude Code's `agent_type` of a subagent ("Explore", "general-purpose").
    agent_type: str | None
    # The agent's name: "<source_app>/<session>" or "<agent_type>/<subagent id>".
    name: str
    # The session's name, for a subagent's parent made on first sight.
    session_name: str
    hook: str
    status: str | None
    prompt: str | None
    model: str | None
    tool: str | None
    tool_use_id: str | None
    # A PostToolUse (or PostToolUseFailure): one tool call finished.
    completed: bool
    is_error: bool
    files_read: tuple[str, ...]
    files_written: tuple[str, ...]
    ended: bool
    # The last answer, at Stop (SubagentStop for a subagent): `last_assistant_message`.
    summary: str | None
    # A StopFailure's: Claude Code's `error` ("rate_limit", "model_not_found") and its message.
    error: str | None


def external_facts(data: ExternalHookReceived) -> ExternalFacts:
    """Read an external hook payload (Claude Code's field names). Never raises."""
    payload = data.payload
    hook = data.hook_event_name
    tool = _str(payload.get("tool_name"))
    tool_input = payload.get("tool_input")
    completed = hook in ("PostToolUse", "PostToolUseFailure")
    read: tuple[str, ...] = ()
    written: tuple[str, ...] = ()
    if completed and tool is not None and isinstance(tool_input, dict):
        cwd = _str(payload.get("cwd"))
        if tool in _READ_TOOLS:
            read = _paths(tool_input.get(_READ_TOOLS[tool]), cwd)
        elif tool in _WRITE_TOOLS:
            written = _paths(tool_input.get(_WRITE_TOOLS[tool]), cwd)
    session = external_agent_id(data.session_id)
    session_name = f"{data.source_app}/{data.session_id[:8]}"
    sub = _str(payload.get("agent_id"))
    agent_type = None if sub is None else (_str(payload.get("agent_type")) or "subagent")
    return ExternalFacts(
        agent_id=session if sub is None else external_subagent_id(data.session_id, sub),
        parent_id=None if sub is None else session,
        agent_type=agent_type,
        name=session_name if sub is None else f"{agent_type}/{sub[:8]}",
        session_name=session_name,
        hook=hook,
        status=(_EXTERNAL_STATUS if sub is None else _SUBAGENT_STATUS).get(hook),
        prompt=_str(payload.get("prompt")) if hook == "UserPromptSubmit" else None,
        model=_model(payload.get("model")),
        tool=tool if hook in ("PreToolUse", "PostToolUse", "PostToolUseFailure") else None,
        tool_use_id=_str(payload.get("tool_use_id")),
        completed=completed,
        is_error=hook == "PostToolUseFailure" or _is_error(payload.get("tool_response")),
        files_read=read,
        files_written=written,
        ended=hook == "SessionEnd",
        summary=_str(payload.get("last_assistant_message"))
        if hook == ("Stop" if sub is None else "SubagentStop")
        else None,
        error=_failure(payload) if hook == "StopFailure" else None,
    )


def _failure(payload: dict[str, Any]) -> str:
    kind = _str(payload.get("error")) or "error"
    message = _str(payload.get("error_details")) or _str(payload.get("last_assistant_message"))
    return kind if message is None else f"{kind}: {message}"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _model(value: Any) -> str | None:
    # SessionStart may carry the model as a string or as {"id": ..., "display_name": ...}.
    if isinstance(value, dict):
        value = value.get("id") or value.get("display_name")
    return _str(value)


def _paths(value: Any, cwd: str | None) -> tuple[str, ...]:
    path = _str(value)
    return () if path is None else (resolve_path(path, cwd),)


def _is_error(response: Any) -> bool:
    if not isinstance(response, dict):
        return False
    return bool(response.get("is_error")) or response.get("success") is False
