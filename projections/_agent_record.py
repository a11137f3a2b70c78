"""One agent's card in the agents read model (`_agents.py`): its shape, and how it starts.

The card's fields are those of the view `_agents.py` describes; timestamps are
kept as epoch seconds and turned into ISO strings when the view is read.
"""

from __future__ import annotations

from sys import intern
from typing import Any, TypedDict

__all__ = [
    "MODEL_CHARS",
    "TASK_CHARS",
    "AgentRecord",
    "cap_model",
    "cap_task",
    "count_call",
    "new_record",
]

TASK_CHARS = 2000
MODEL_CHARS = 200


class AgentRecord(TypedDict):
    """One agent in the agents state (JSON data; sets are dicts of None)."""

    id: str
    name: str
    role: str
    model: str
    parent_id: str | None
    run_id: str | None
    status: str
    task: str | None
    external: bool
    source_app: str | None
    engine: str | None
    session_id: str | None
    # An external agent's process, from its last hook (`ExternalProcess`), if a forwarder said.
    process: dict[str, Any] | None
    context_used: int
    context_limit: int
    input: int
    output: int
    cache_write: int
    cache_read: int
    cost_usd: float
    turns: int
    files_consumed: dict[str, None]
    files_produced: dict[str, None]
    tool_count: int
    tool_errors: int
    by_tool: dict[str, int]
    last_tool: dict[str, Any] | None
    blocked_calls: int
    # The last blocked call: a second hook blocking the same call counts once.
    last_blocked: str | None
    compactions: int
    waiting_on: list[str]
    waiting_for: str | None
    approval: dict[str, Any] | None
    approvals: dict[str, int]
    system_messages: list[dict[str, Any]]
    created_at: float
    started_at: float | None
    finished_at: float | None
    last_activity_at: float
    error: str | None
    limit: str | None
    # The position of the last event that changed the card: `GET /v1/agents?changed_after=`.
    position: int
    summary: str
    artifacts: dict[str, None]


def cap_model(model: str) -> str:
    """`model` cut to `MODEL_CHARS`, interned (note above `new_record`). A model name comes
    from whoever posts a session's hooks or telemetry: a megabyte there was on every card,
    and interned (never freed on Python 3.12)."""
    if len(model) > MODEL_CHARS:
        model = model[: MODEL_CHARS - 1] + "…"
    return intern(model)


def cap_task(text: str | None) -> str | None:
    """`text` cut to `TASK_CHARS` (a task is shown, not kept whole, on a card)."""
    if text is None or len(text) <= TASK_CHARS:
        return text
    return text[: TASK_CHARS - 1] + "…"


# Names, roles, models, tool names and paths repeat across thousands of agents, but each
# event decodes its own copy: interned (a bounded vocabulary), each is one object in the
# state, and one in a time-travel snapshot's pickle (at 1M events the agents snapshot's
# pickle is a third smaller and loads in 0.7x the time). Ids are shared with the parent's
# record instead: on Python 3.12 an interned string is never freed.
def new_record(
    agent_id: str,
    *,
    name: str,
    role: str,
    model: str,
    at: float,
    position: int,
    parent_id: str | None = None,
    run_id: str | None = None,
    task: str | None = None,
    context_limit: int = 200_000,
    external: bool = False,
    source_app: str | None = None,
    engine: str | None = None,
    session_id: str | None = None,
) -> AgentRecord:
    """A fresh agent record in status "created"."""
    return {
        "id": agent_id,
        "name": intern(name),
        "role": intern(role),
        "model": cap_model(model),
        "parent_id": parent_id,
        "run_id": run_id,
        "status": "created",
        "task": cap_task(task),
        "external": external,
        "source_app": source_app,
        "engine": engine,
        "session_id": session_id,
        "process": None,
        "context_used": 0,
        "context_limit": context_limit,
        "input": 0,
        "output": 0,
        "cache_write": 0,
        "cache_read": 0,
        "cost_usd": 0.0,
        "turns": 0,
        "files_consumed": {},
        "files_produced": {},
        "tool_count": 0,
        "tool_errors": 0,
        "by_tool": {},
        "last_tool": None,
        "blocked_calls": 0,
        "last_blocked": None,
        "compactions": 0,
        "waiting_on": [],
        "waiting_for": None,
        "approval": None,
        "approvals": {"requested": 0, "allowed": 0, "denied": 0},
        "system_messages": [],
        "created_at": at,
        "started_at": None,
        "finished_at": None,
        "last_activity_at": at,
        "error": None,
        "limit": None,
        "summary": "",
        "artifacts": {},
        "position": position,
    }


def count_call(
    r: AgentRecord, name: str, tool_use_id: str | None, status: str, is_error: bool
) -> None:
    """Count one tool call on the card, as its latest."""
    r["tool_count"] += 1
    by_tool = r["by_tool"]
    name = intern(name)
    by_tool[name] = by_tool.get(name, 0) + 1
    if is_error:
        r["tool_errors"] += 1
    r["last_tool"] = {
        "name": name,
        "tool_use_id": tool_use_id,
        "status": status,
        "at": r["last_activity_at"],
    }
