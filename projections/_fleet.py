"""The fleet read model: totals over every agent and the log's pace.

View shape (`FleetProjection.view`)::

    {"agents": {"total": int, "active": int,
                "by_status": {"created": int, "working": int, "waiting": int,
                              "completed": int, "failed": int, "deleted": int}},
     "agents_created": int, "agents_deleted": int,
     "tokens": {"input": int, "output": int, "cache_write": int,
                "cache_read": int, "total": int},
     "cost_usd": float,
     "context_tokens_in_use": int,      # summed over agents not deleted
     "events": {"total": int, "last_minute": int, "per_second": float,
                "series_start": iso | None, "series": [int] * 60,
                "last_at": iso | None}}

"Active" agents are created, working or waiting. The event rate is measured
by `recorded_at`, over the minute ending at the latest event seen (not the
wall clock), so it is a pure function of the log: `series` holds the count
of each of those 60 seconds, oldest first, and `per_second` is
`last_minute / 60`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypedDict

from events import (
    AgentCreated,
    ApprovalDecided,
    ContextCompacted,
    EventModel,
    ExternalHookReceived,
    ModelResponded,
    RecordedEvent,
)

from ._base import FoldProjection, iso
from ._lean import Lean
from ._lifecycle import (
    ACTIVE_STATUSES,
    STATUS_AFTER,
    STATUSES,
    external_facts,
    external_status,
    next_status,
)
from .errors import ProjectionFailed

__all__ = ["FleetProjection", "FleetState"]

WINDOW_SECONDS = 60


class FleetState(TypedDict):
    """Totals, plus each agent's [status, context tokens] to keep them exact."""

    agents: dict[str, list[Any]]
    by_status: dict[str, int]
    created: int
    deleted: int
    input: int
    output: int
    cache_write: int
    cache_read: int
    cost_usd: float
    context_in_use: int
    events: int
    last_at: float | None
    # [[second, count], ...] ascending, only seconds within the last minute.
    window: list[list[int]]


class FleetProjection(FoldProjection[FleetState]):
    """Agents by status, tokens, cost, context in use and events per second."""

    name = "fleet"
    # 2: agents "completed" (was "complete"); 3: external subagents count; 4: waiting for
    # an approval; 5: a Claude Code session's StopFailure fails it
    version = 5
    ignores = frozenset(
        {
            "ToolCallInterrupted",
            "RunStarted",
            "RunCompleted",
            "RunFailed",
            "ToolCallRequested",
            "ToolCallCompleted",
            "HookInvoked",
            "TaskCreated",
            "TaskMoved",
            "ReplayDiverged",
            "ChatMessagePosted",
            "TelemetryReceived",
        }
    )

    # A model's answer is read for its usage and cost, never its content (`_lean.py`).
    lean = (Lean(ModelResponded, ("agent_id", "usage", "cost_usd")),)

    def __init__(self) -> None:
        super().__init__()
        for cls in STATUS_AFTER:
            self.handlers[cls] = self._status
        self.handlers[ApprovalDecided] = self._approval_decided
        self.handlers[AgentCreated] = self._created
        self.handlers[ModelResponded] = self._model_responded
        self.handlers[ContextCompacted] = self._compacted
        self.handlers[ExternalHookReceived] = self._external

    def initial(self) -> FleetState:
        return {
            "agents": {},
            "by_status": dict.fromkeys(STATUSES, 0),
            "created": 0,
            "deleted": 0,
            "input": 0,
            "output": 0,
            "cache_write": 0,
            "cache_read": 0,
            "cost_usd": 0.0,
            "context_in_use": 0,
            "events": 0,
            "last_at": None,
            "window": [],
        }

    @property
    def types(self) -> frozenset[type[EventModel]] | None:
        """None: the fleet counts every event in its pace."""
        return None

    @property
    def reads(self) -> frozenset[type[EventModel]]:
        """The handlers' classes: the only events whose data the fleet reads (the others
        are counted, their data left undecoded: most of a fold's cost, `_folding.py`)."""
        return frozenset(self.handlers)

    def apply(self, state: FleetState, event: RecordedEvent) -> FleetState:
        """Count `event` in the pace, then fold it (mutates `state`, see _base note 1)."""
        return self.apply_all(state, (event,))

    def apply_all(self, state: FleetState, events: Iterable[RecordedEvent]) -> FleetState:
        """`apply` each event in turn (mutates `state`), counting the pace per commit.

        The events of one group commit share one `recorded_at` object: the
        pace is counted once per run of them, not once per event.
        """
        # By type name: an event is dispatched without decoding its data (`reads`).
        handled = self._dispatch or self._dispatch_by_name()
        at: datetime | None = None
        count = 0
        event: RecordedEvent | None = None
        try:
            for event in events:  # never an unknown one (`Projection`)
                if event.recorded_at is not at:
                    if at is not None:
                        _count(state, at, count)
                    at, count = event.recorded_at, 0
                count += 1
                if event.type in handled:  # its data whole, or lean (`handled`)
                    found = self.handled(event)
                    if found is not None:
                        found[0](state, event, found[1])
        except Exception as e:
            raise ProjectionFailed(self.name, 0 if event is None else event.position, e) from e
        if at is not None:
            _count(state, at, count)
        return state

    def view(self, state: FleetState) -> dict[str, Any]:
        by_status = dict(state["by_status"])
        tokens = state["input"] + state["output"] + state["cache_write"] + state["cache_read"]
        window = state["window"]
        series = [0] * WINDOW_SECONDS
        start: int | None = None
        if window:
            start = window[-1][0] - WINDOW_SECONDS + 1
            for second, count in window:
                series[second - start] = count
        last_minute = sum(series)
        return {
            "agents": {
                "total": len(state["agents"]),
                "active": sum(by_status[s] for s in ACTIVE_STATUSES),
                "by_status": by_status,
            },
            "agents_created": state["created"],
            "agents_deleted": state["deleted"],
            "tokens": {
                "input": state["input"],
                "output": state["output"],
                "cache_write": state["cache_write"],
                "cache_read": state["cache_read"],
                "total": tokens,
            },
            "cost_usd": round(state["cost_usd"], 6),
            "context_tokens_in_use": state["context_in_use"],
            "events": {
                "total": state["events"],
                "last_minute": last_minute,
                "per_second": round(last_minute / WINDOW_SECONDS, 3),
                "series_start": None if start is None else iso(float(start)),
                "series": series,
                "last_at": iso(state["last_at"]),
            },
        }

    # -- folding ------------------------------------------------------------

    def _created(self, state: FleetState, event: RecordedEvent, d: AgentCreated) -> None:
        if d.agent_id not in state["agents"]:
            _add_agent(state, d.agent_id)

    def _status(self, state: FleetState, event: RecordedEvent, d: Any) -> None:
        _move(state, d.agent_id, STATUS_AFTER[type(d)])

    def _approval_decided(
        self, state: FleetState, event: RecordedEvent, d: ApprovalDecided
    ) -> None:
        agent = state["agents"].get(d.agent_id)
        if agent is not None and agent[0] == "waiting":
            _move(state, d.agent_id, "working")

    def _model_responded(self, state: FleetState, event: RecordedEvent, d: ModelResponded) -> None:
        agent = state["agents"].get(d.agent_id)
        if agent is None:
            return  # the agents projection reports it
        u = d.usage
        state["input"] += u.input_tokens
        state["output"] += u.output_tokens
        state["cache_write"] += u.cache_creation_input_tokens
        state["cache_read"] += u.cache_read_input_tokens
        state["cost_usd"] += d.cost_usd
        _set_context(state, agent, u.context_tokens + u.output_tokens)

    def _compacted(self, state: FleetState, event: RecordedEvent, d: ContextCompacted) -> None:
        agent = state["agents"].get(d.agent_id)
        if agent is not None:
            _set_context(state, agent, d.tokens_after)

    def _external(self, state: FleetState, event: RecordedEvent, d: ExternalHookReceived) -> None:
        f = external_facts(d)
        if f.parent_id is not None and f.parent_id not in state["agents"]:
            _add_agent(state, f.parent_id)
        if f.agent_id not in state["agents"]:
            _add_agent(state, f.agent_id)
        if f.status is not None:
            _move(state, f.agent_id, external_status(state["agents"][f.agent_id][0], f))


def _add_agent(state: FleetState, agent_id: str) -> None:
    state["agents"][agent_id] = ["created", 0]
    state["by_status"]["created"] += 1
    state["created"] += 1


def _move(state: FleetState, agent_id: str, status: str) -> None:
    agent = state["agents"].get(agent_id)
    if agent is None:
        return
    old = agent[0]
    new = next_status(old, status)
    if new == old:
        return
    by_status = state["by_status"]
    by_status[old] -= 1
    by_status[new] += 1
    agent[0] = new
    if new == "deleted":
        state["deleted"] += 1
        state["context_in_use"] -= agent[1]  # a deleted agent's context is freed
        agent[1] = 0


def _set_context(state: FleetState, agent: list[Any], tokens: int) -> None:
    if agent[0] == "deleted":
        return
    state["context_in_use"] += tokens - agent[1]
    agent[1] = tokens


def _count(state: FleetState, at: datetime, count: int) -> None:
    ts = at.timestamp()
    state["events"] += count
    last = state["last_at"]
    if last is None or ts > last:
        state["last_at"] = ts
    _count_second(state["window"], int(ts), count)


def _count_second(window: list[list[int]], second: int, count: int) -> None:
    if window:
        newest = window[-1][0]
        if second == newest:
            window[-1][1] += count
            return
        if second < newest:
            # A clock a little behind another writer's: count it if still in the window.
            if second > newest - WINDOW_SECONDS:
                for bucket in window:
                    if bucket[0] == second:
                        bucket[1] += count
                        return
                window.append([second, count])
                window.sort()
            return
    window.append([second, count])
    cutoff = second - WINDOW_SECONDS
    while window[0][0] <= cutoff:
        del window[0]
