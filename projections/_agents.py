"""The agents read model: one card per agent, internal or external.

View shape (`AgentsProjection.view`), agents in the order they were created::

    {"count": int,
     "agents": [{
        "id": str, "name": str, "role": str, "model": str,
        "parent_id": str | None, "run_id": str | None,
        "status": "created" | "working" | "waiting" | "completed" | "failed" | "deleted",
        "task": str | None,                  # the current task (last command), <= 2000 chars
        "context": {"used": int, "limit": int, "percent": float},
        "tokens": {"input": int, "output": int, "cache_write": int,
                   "cache_read": int, "total": int},
        "cost_usd": float, "turns": int,
        "files_consumed": [str], "files_produced": [str],
        "tool_calls": {"count": int, "errors": int, "by_tool": {name: int},
                       "last": {"name", "tool_use_id", "status", "at"} | None},
        "blocked_calls": int, "compactions": int, "waiting_on": [str],
        "waiting_for": "agents" | "approval" | None,
        "approval": {"id", "tool_name", "tool_use_id", "tool_input", "reason",
                     "requested_at", "expires_at"} | None,     # the call on hold, if any
        "approvals": {"requested": int, "allowed": int, "denied": int},
        "system_messages": [{"point", "hook", "text", "at"}],  # the last 5 hooks said
        "created_at": iso, "started_at": iso | None, "finished_at": iso | None,
        "last_activity_at": iso,
        "error": str | None, "limit": str | None,
        "summary": str, "artifacts": [str],
        "external": bool, "source_app": str | None,
        "engine": "fleet" | "claude-code" | None, "session_id": str | None,
        "process": {"pid", "start", "boot_id", "machine_id", "pid_ns"} | None,
        "position": int}]}                   # the last event that changed the card

`process` is an external agent's process as a forwarder said (`fleet
hook-forward` on the server's host), kept from hook to hook until a
SessionStart says another (or none); a subagent's is its session's. The API
and the CLI judge from it whether the session still runs
(`judge_liveness`); the log cannot.
`tool_calls.last.status` is "running", "ok", "error" or "blocked".
A card is "waiting" with `waiting_for: "approval"` while a tool call is on
hold for a person (ApprovalRequested until ApprovalDecided). Every approval
is also kept by id (`approvals_view`, `approval_view`): "pending", "allowed",
"denied", or "cancelled" when its agent failed, completed or was deleted
first.
Context in use is the last model response's input (all buckets: input,
cache write, cache read) plus its output; a compaction sets it to the tokens
left after it. Blocked calls count hook decisions "block" or "deny" (once per
tool call). An event naming an agent that was never created is logged and
skipped. A card's `position` is that of the last event that changed it (its
`last_activity_at` included), so the cards changed after a position are those
with a greater one: a client that holds the view as of P asks for those
(`GET /v1/agents?changed_after=P`) instead of every card again.
"""

from __future__ import annotations

from sys import intern
from typing import Any, TypedDict

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    AgentWaiting,
    AgentWoke,
    ApprovalDecided,
    ApprovalRequested,
    ContextCompacted,
    ExternalHookReceived,
    HookInvoked,
    ModelResponded,
    RecordedEvent,
    ToolCallCompleted,
    ToolCallRequested,
)

from ._agent_record import AgentRecord, cap_model, cap_task, count_call, new_record
from ._base import FoldProjection, iso, report
from ._gates import Gate
from ._lean import Lean
from ._lifecycle import ACTIVE_STATUSES, EXTERNAL_ROLE, external_facts, external_status

__all__ = ["AgentRecord", "AgentsProjection", "AgentsState"]

SYSTEM_MESSAGES = 5
_BLOCKING = frozenset({"block", "deny"})


def _hook_matters(d: Any) -> bool:
    """Whether a hook event changes a card: it blocked, or said something (`d` is the
    data, or the gate's model of these two fields)."""
    return d.decision in _BLOCKING or bool(d.system_message)


class AgentsState(TypedDict):
    """The agents state: records by id, in creation order, and every approval by id."""

    agents: dict[str, AgentRecord]
    approvals: dict[str, dict[str, Any]]
    # The external agents in an active status (created, working, waiting), a set by id: the
    # ones the API judges now (note 5 of api/_routes_views.py), without walking every card.
    live_external: dict[str, None]


class AgentsProjection(FoldProjection[AgentsState]):
    """Status, context, tokens, cost, files and tool calls of every agent."""

    name = "agents"
    # 2: state shape changed before the first release; 3: "completed"; 4: external subagents;
    # 5: approvals and what hooks said; 6: engine and session_id; 7: position;
    # 8: a Claude Code session's StopFailure fails it, its Stop gives its summary;
    # 9: an external agent's process; 10: the external agents in an active status;
    # 11: a model name cut to MODEL_CHARS
    version = 11
    ignores = frozenset(
        {
            "ToolCallInterrupted",
            "RunStarted",
            "RunCompleted",
            "RunFailed",
            "TaskCreated",
            "TaskMoved",
            "ReplayDiverged",
            "ChatMessagePosted",
            "TelemetryReceived",
        }
    )

    # Most hook events neither block nor say anything: a bulk fold decodes only those that
    # do (`_gates.py`); `_hook_invoked` makes the same test for the live fold.
    gates = (
        Gate(
            HookInvoked,
            ("decision", "system_message"),
            _hook_matters,
            store_test=(("decision", _BLOCKING), ("system_message", None)),
        ),
    )
    # What the handlers read of the busiest events: a bulk fold validates only these
    # (`_lean.py`); a model's answer and a tool's input and result are most of their bytes.
    lean = (
        Lean(ModelResponded, ("agent_id", "model", "context_limit", "usage", "cost_usd")),
        Lean(ToolCallRequested, ("agent_id", "name", "tool_use_id")),
        Lean(
            ToolCallCompleted,
            (
                "agent_id",
                "name",
                "tool_use_id",
                "blocked",
                "is_error",
                "files_read",
                "files_written",
            ),
        ),
    )

    def __init__(self) -> None:
        super().__init__()
        self.handlers.update(
            {
                AgentCreated: self._created,
                AgentCommanded: self._commanded,
                AgentWaiting: self._waiting,
                AgentWoke: self._woke,
                AgentCompleted: self._completed,
                AgentFailed: self._failed,
                AgentDeleted: self._deleted,
                ModelResponded: self._model_responded,
                ContextCompacted: self._compacted,
                ToolCallRequested: self._tool_requested,
                ToolCallCompleted: self._tool_completed,
                HookInvoked: self._hook_invoked,
                ApprovalRequested: self._approval_requested,
                ApprovalDecided: self._approval_decided,
                ExternalHookReceived: self._external,
            }
        )

    def initial(self) -> AgentsState:
        return {"agents": {}, "approvals": {}, "live_external": {}}

    # -- queries ------------------------------------------------------------

    def view(self, state: AgentsState) -> dict[str, Any]:
        agents = [self.record_view(r) for r in state["agents"].values()]
        return {"count": len(agents), "agents": agents}

    def approvals_view(self, state: AgentsState, status: str | None = None) -> dict[str, Any]:
        """Approvals in the order they were asked for, those in `status` only if given."""
        found = [
            _approval_card(a)
            for a in state["approvals"].values()
            if status is None or a["status"] == status
        ]
        return {"count": len(found), "approvals": found}

    def approval_view(self, state: AgentsState, approval_id: str) -> dict[str, Any] | None:
        """One approval, or None if no such approval was asked for."""
        record = state["approvals"].get(approval_id)
        return None if record is None else _approval_card(record)

    def agent_view(self, state: AgentsState, agent_id: str) -> dict[str, Any] | None:
        """One agent's card from the view, or None if no such agent was created."""
        record = state["agents"].get(agent_id)
        return None if record is None else self.record_view(record)

    @staticmethod
    def record_view(r: AgentRecord) -> dict[str, Any]:
        """The JSON card of one record (new containers; the record is not mutated)."""
        limit = r["context_limit"]
        used = r["context_used"]
        tokens = r["input"] + r["output"] + r["cache_write"] + r["cache_read"]
        last = r["last_tool"]
        return {
            "id": r["id"],
            "name": r["name"],
            "role": r["role"],
            "model": r["model"],
            "parent_id": r["parent_id"],
            "run_id": r["run_id"],
            "status": r["status"],
            "task": r["task"],
            "context": {
                "used": used,
                "limit": limit,
                "percent": round(100.0 * used / limit, 1) if limit > 0 else 0.0,
            },
            "tokens": {
                "input": r["input"],
                "output": r["output"],
                "cache_write": r["cache_write"],
                "cache_read": r["cache_read"],
                "total": tokens,
            },
            "cost_usd": round(r["cost_usd"], 6),
            "turns": r["turns"],
            "files_consumed": list(r["files_consumed"]),
            "files_produced": list(r["files_produced"]),
            "tool_calls": {
                "count": r["tool_count"],
                "errors": r["tool_errors"],
                "by_tool": dict(r["by_tool"]),
                "last": None if last is None else {**last, "at": iso(last["at"])},
            },
            "blocked_calls": r["blocked_calls"],
            "compactions": r["compactions"],
            "waiting_on": list(r["waiting_on"]),
            "waiting_for": r["waiting_for"],
            "approval": None if r["approval"] is None else _approval_card(r["approval"]),
            "approvals": dict(r["approvals"]),
            "system_messages": [{**m, "at": iso(m["at"])} for m in r["system_messages"]],
            "created_at": iso(r["created_at"]),
            "started_at": iso(r["started_at"]),
            "finished_at": iso(r["finished_at"]),
            "last_activity_at": iso(r["last_activity_at"]),
            "error": r["error"],
            "limit": r["limit"],
            "summary": r["summary"],
            "artifacts": list(r["artifacts"]),
            "external": r["external"],
            "source_app": r["source_app"],
            "engine": r["engine"],
            "session_id": r["session_id"],
            "process": r["process"],
            "position": r["position"],
        }

    # -- folding ------------------------------------------------------------

    def _get(self, state: AgentsState, event: RecordedEvent, agent_id: str) -> AgentRecord | None:
        record = state["agents"].get(agent_id)
        if record is None:
            report(self.name, event, "no agent %r was created", agent_id)
            return None
        record["last_activity_at"] = self.ts(event)
        record["position"] = event.position
        return record

    def _created(self, state: AgentsState, event: RecordedEvent, d: AgentCreated) -> None:
        if d.agent_id in state["agents"]:
            report(self.name, event, "agent %r already exists", d.agent_id)
            return
        parent_id, run_id = d.parent_id, event.meta.run_id
        parent = None if parent_id is None else state["agents"].get(parent_id)
        if parent is not None:  # the parent's strings: one object each (`_agent_record.py`)
            parent_id = parent["id"]
            if run_id == parent["run_id"]:
                run_id = parent["run_id"]
        state["agents"][d.agent_id] = new_record(
            d.agent_id,
            name=d.name,
            role=d.role,
            model=d.model,
            at=self.ts(event),
            position=event.position,
            parent_id=parent_id,
            run_id=run_id,
            task=d.task,
            context_limit=d.context_limit,
            external=d.external,
            engine=None if d.external else d.engine,
            session_id=d.session_id,
        )
        if d.external:
            state["live_external"][d.agent_id] = None

    def _commanded(self, state: AgentsState, event: RecordedEvent, d: AgentCommanded) -> None:
        r = self._get(state, event, d.agent_id)
        if r is None or r["status"] == "deleted":
            return
        r["status"] = "working"
        _track(state, r)
        r["task"] = cap_task(d.prompt)
        if r["started_at"] is None:
            r["started_at"] = r["last_activity_at"]
        r["finished_at"] = None
        r["error"] = r["limit"] = None

    def _waiting(self, state: AgentsState, event: RecordedEvent, d: AgentWaiting) -> None:
        r = self._get(state, event, d.agent_id)
        if r is not None and r["status"] != "deleted":
            r["status"] = "waiting"
            _track(state, r)
            r["waiting_on"] = list(d.on)
            r["waiting_for"] = "agents"

    def _woke(self, state: AgentsState, event: RecordedEvent, d: AgentWoke) -> None:
        r = self._get(state, event, d.agent_id)
        if r is not None and r["status"] != "deleted":
            r["status"] = "working"
            _track(state, r)
            r["waiting_on"] = []
            r["waiting_for"] = None

    def _completed(self, state: AgentsState, event: RecordedEvent, d: AgentCompleted) -> None:
        r = self._get(state, event, d.agent_id)
        if r is None:
            return
        r["summary"] = d.summary
        for path in d.artifacts:
            r["artifacts"][intern(path)] = None
        if r["status"] != "deleted":
            r["status"] = "completed"
            _track(state, r)
            r["finished_at"] = r["last_activity_at"]
            r["waiting_on"] = []
            _end_waits(state, r)

    def _failed(self, state: AgentsState, event: RecordedEvent, d: AgentFailed) -> None:
        r = self._get(state, event, d.agent_id)
        if r is None or r["status"] == "deleted":
            return
        r["status"] = "failed"
        _track(state, r)
        r["error"] = d.error
        r["limit"] = d.limit
        r["finished_at"] = r["last_activity_at"]
        r["waiting_on"] = []
        _end_waits(state, r)

    def _deleted(self, state: AgentsState, event: RecordedEvent, d: AgentDeleted) -> None:
        r = self._get(state, event, d.agent_id)
        if r is None or r["status"] == "deleted":
            return
        r["status"] = "deleted"
        _track(state, r)
        r["waiting_on"] = []
        _end_waits(state, r)
        if r["finished_at"] is None:
            r["finished_at"] = r["last_activity_at"]

    def _model_responded(self, state: AgentsState, event: RecordedEvent, d: ModelResponded) -> None:
        # Counted even after deletion: an in-flight response still cost money.
        r = self._get(state, event, d.agent_id)
        if r is None:
            return
        if r["external"] and d.model and d.model != "unknown":
            r["model"] = cap_model(d.model)  # an ingested session learns it from its transcript
        if d.context_limit:
            r["context_limit"] = d.context_limit
        u = d.usage
        r["input"] += u.input_tokens
        r["output"] += u.output_tokens
        r["cache_write"] += u.cache_creation_input_tokens
        r["cache_read"] += u.cache_read_input_tokens
        r["cost_usd"] += d.cost_usd
        r["turns"] += 1
        r["context_used"] = (
            u.input_tokens
            + u.cache_creation_input_tokens
            + u.cache_read_input_tokens
            + u.output_tokens
        )

    def _compacted(self, state: AgentsState, event: RecordedEvent, d: ContextCompacted) -> None:
        r = self._get(state, event, d.agent_id)
        if r is not None:
            r["context_used"] = d.tokens_after
            r["compactions"] += 1

    def _tool_requested(
        self, state: AgentsState, event: RecordedEvent, d: ToolCallRequested
    ) -> None:
        r = self._get(state, event, d.agent_id)
        if r is not None:
            r["last_tool"] = {
                "name": intern(d.name),
                "tool_use_id": d.tool_use_id,
                "status": "running",
                "at": r["last_activity_at"],
            }

    def _tool_completed(
        self, state: AgentsState, event: RecordedEvent, d: ToolCallCompleted
    ) -> None:
        r = self._get(state, event, d.agent_id)
        if r is None:
            return
        status = "blocked" if d.blocked else "error" if d.is_error else "ok"
        count_call(r, d.name, d.tool_use_id, status, d.is_error)
        consumed = r["files_consumed"]
        for path in d.files_read:
            consumed[intern(path)] = None
        produced = r["files_produced"]
        for path in d.files_written:
            produced[intern(path)] = None

    def _hook_invoked(self, state: AgentsState, event: RecordedEvent, d: HookInvoked) -> None:
        if d.agent_id is None or not _hook_matters(d):
            return
        r = self._get(state, event, d.agent_id)
        if r is None:
            return
        if d.system_message:
            said = {"point": d.point, "hook": d.hook, "text": d.system_message}
            r["system_messages"] = [
                *r["system_messages"][-(SYSTEM_MESSAGES - 1) :],
                {**said, "at": r["last_activity_at"]},
            ]
        if d.decision not in _BLOCKING or d.detached:
            return
        # The hooks of one call run one after another: a repeat is the same call.
        if d.tool_use_id is None or d.tool_use_id != r["last_blocked"]:
            r["blocked_calls"] += 1
            r["last_blocked"] = d.tool_use_id

    def _approval_requested(
        self, state: AgentsState, event: RecordedEvent, d: ApprovalRequested
    ) -> None:
        r = self._get(state, event, d.agent_id)
        if r is None:
            return
        at = r["last_activity_at"]
        approval = {
            "id": d.approval_id,
            "agent_id": d.agent_id,
            "agent_name": r["name"],
            "run_id": r["run_id"],
            "tool_use_id": d.tool_use_id,
            "tool_name": d.tool_name,
            "tool_input": d.tool_input,
            "reason": d.reason,
            "status": "pending",
            "requested_at": at,
            "expires_at": at + d.timeout_s,
            "decided_at": None,
            "by": None,
            "decision_reason": None,
        }
        state["approvals"][d.approval_id] = approval
        r["approvals"]["requested"] += 1
        if r["status"] != "deleted":
            r["approval"] = dict(approval)
            r["status"] = "waiting"
            _track(state, r)
            r["waiting_for"] = "approval"

    def _approval_decided(
        self, state: AgentsState, event: RecordedEvent, d: ApprovalDecided
    ) -> None:
        approval = state["approvals"].get(d.approval_id)
        r = self._get(state, event, d.agent_id)
        if approval is None or r is None:
            if approval is None:
                report(self.name, event, "no approval %r was asked for", d.approval_id)
            return
        approval["status"] = "allowed" if d.decision == "allow" else "denied"
        approval["decided_at"] = r["last_activity_at"]
        approval["by"] = d.by
        approval["decision_reason"] = d.reason
        r["approvals"]["allowed" if d.decision == "allow" else "denied"] += 1
        current = r["approval"]
        if current is not None and current["id"] == d.approval_id:
            r["approval"] = None
            if r["status"] == "waiting":
                r["status"] = "working"
                r["waiting_for"] = None

    def _external(self, state: AgentsState, event: RecordedEvent, d: ExternalHookReceived) -> None:
        f = external_facts(d)
        ts = self.ts(event)
        if f.parent_id is not None:
            _external_record(
                state, f.parent_id, f.session_name, None, d, ts, event.meta.run_id, event.position
            )
        r = _external_record(
            state, f.agent_id, f.name, f.parent_id, d, ts, event.meta.run_id, event.position
        )
        r["last_activity_at"] = ts
        r["position"] = event.position
        # The process: as a forwarder said; else the one known (the README's settings forward
        # SessionStart only), a subagent's its session's; a new process (SessionStart) not
        # named is not known.
        if d.process is not None:
            r["process"] = d.process.model_dump()
        elif f.hook == "SessionStart":
            r["process"] = None
        elif f.parent_id is not None:
            r["process"] = state["agents"][f.parent_id]["process"]
        if f.model is not None:
            r["model"] = cap_model(f.model)
        if f.prompt is not None:
            r["task"] = cap_task(f.prompt)
        if f.summary is not None:
            r["summary"] = f.summary
        if f.status is not None and r["status"] != "deleted":
            if f.status == "working" and r["started_at"] is None:
                r["started_at"] = ts
            if f.status in ("working", "waiting"):
                r["finished_at"] = None
                r["error"] = None
            elif f.status in ("completed", "failed"):
                r["finished_at"] = ts
            if f.error is not None:
                r["error"] = f.error
            r["status"] = external_status(r["status"], f)
            _track(state, r)
        if f.tool is not None and f.tool_use_id is not None and not f.completed:
            r["last_tool"] = {
                "name": f.tool,
                "tool_use_id": f.tool_use_id,
                "status": "running",
                "at": ts,
            }
        if f.completed and f.tool is not None:
            count_call(r, f.tool, f.tool_use_id, "error" if f.is_error else "ok", f.is_error)
            for path in f.files_read:
                r["files_consumed"][path] = None
            for path in f.files_written:
                r["files_produced"][path] = None


def _track(state: AgentsState, r: AgentRecord) -> None:
    """Keep `live_external` after `r`'s status changed: in it while external and active."""
    if r["external"]:
        if r["status"] in ACTIVE_STATUSES:
            state["live_external"][r["id"]] = None
        else:
            state["live_external"].pop(r["id"], None)


def _end_waits(state: AgentsState, r: AgentRecord) -> None:
    """The agent stopped: nothing it waited for matters now; a pending approval is cancelled."""
    r["waiting_for"] = None
    approval = r["approval"]
    if approval is not None:
        state["approvals"][approval["id"]]["status"] = "cancelled"
        r["approval"] = None


def _approval_card(a: dict[str, Any]) -> dict[str, Any]:
    return {
        **a,
        "requested_at": iso(a["requested_at"]),
        "expires_at": iso(a["expires_at"]),
        "decided_at": iso(a["decided_at"]),
    }


def _external_record(
    state: AgentsState,
    agent_id: str,
    name: str,
    parent_id: str | None,
    d: ExternalHookReceived,
    ts: float,
    run_id: str | None,
    position: int,
) -> AgentRecord:
    """The record of an external agent (a session or one of its subagents), made on first sight."""
    r = state["agents"].get(agent_id)
    if r is None:
        r = new_record(
            agent_id,
            name=name,
            role=EXTERNAL_ROLE,
            model="unknown",
            at=ts,
            position=position,
            parent_id=parent_id,
            run_id=run_id,
            external=True,
            source_app=d.source_app,
        )
        state["agents"][agent_id] = r
        state["live_external"][agent_id] = None
    return r
