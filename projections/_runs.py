"""The runs read model: each run's pattern, status, duration, cost and agents.

View shape (`RunsProjection.view`), runs in the order they started::

    {"count": int,
     "runs": [{"id": str, "task": str, "pattern": str | None, "model": str | None,
               "workspace": str | None, "status": "running" | "completed" | "failed",
               "simulated": bool, "replay_of": str | None,
               "started_at": iso, "finished_at": iso | None,
               "duration_ms": float,  # as recorded on completion; else to its last response
               "cost_usd": float,
               "tokens": {"input": int, "output": int, "cache_write": int,
                          "cache_read": int, "total": int},
               "agents": [str], "agent_count": int,
               "summary": str, "error": str | None,
               "position": int}]}   # the last event that changed the run's card

A run's agents are those whose AgentCreated (or external hook) carries the
run's `meta.run_id`; its cost and tokens are summed from the ModelResponded
events of those agents (or carrying the run id). Events naming a run that
never started are logged and skipped. A run's `position` is that of the last
event that changed its card (`GET /v1/runs?changed_after=`, as for agents).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from events import (
    AgentCreated,
    EventModel,
    EventStore,
    ExternalHookReceived,
    ModelResponded,
    RecordedEvent,
    RunCompleted,
    RunFailed,
    RunStarted,
    live_keys,
)

from ._base import FoldProjection, iso, report
from ._lean import Lean
from ._lifecycle import external_agent_id, external_subagent_id

__all__ = [
    "RUN_STATUSES",
    "RunRecord",
    "RunsProjection",
    "RunsState",
    "conducted_runs",
    "cut_short",
    "mark_interrupted",
]

RUN_STATUSES = ("running", "completed", "failed", "interrupted")
"""A run's status: the log's three, and "interrupted", judged now (`mark_interrupted`)."""


class RunRecord(TypedDict):
    """One run (JSON data)."""

    id: str
    task: str
    pattern: str | None
    model: str | None
    workspace: str | None
    simulated: bool
    replay_of: str | None
    status: str
    started_at: float
    finished_at: float | None
    last_at: float
    duration_ms: float | None
    cost_usd: float
    input: int
    output: int
    cache_write: int
    cache_read: int
    agents: dict[str, None]
    summary: str
    error: str | None
    # The position of the last event that changed the run's card (`changed_after`).
    position: int


class RunsState(TypedDict):
    """Runs by id (start order) and the run of every agent."""

    runs: dict[str, RunRecord]
    agent_runs: dict[str, str]


class RunsProjection(FoldProjection[RunsState]):
    """Pattern, status, duration, cost and agents of every run."""

    name = "runs"
    version = 3  # 2: external subagents join their run; 3: position
    ignores = frozenset(
        {
            "ToolCallInterrupted",
            "AgentCommanded",
            "ToolCallRequested",
            "ToolCallCompleted",
            "HookInvoked",
            "ApprovalRequested",
            "ApprovalDecided",
            "AgentWaiting",
            "AgentWoke",
            "ContextCompacted",
            "AgentCompleted",
            "AgentFailed",
            "AgentDeleted",
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
        self.handlers.update(
            {
                RunStarted: self._started,
                RunCompleted: self._completed,
                RunFailed: self._failed,
                AgentCreated: self._agent_created,
                ExternalHookReceived: self._external,
                ModelResponded: self._model_responded,
            }
        )

    def initial(self) -> RunsState:
        return {"runs": {}, "agent_runs": {}}

    @property
    def types(self) -> frozenset[type[EventModel]] | None:
        """The handlers' classes: `apply` below folds nothing else."""
        return frozenset(self.handlers)

    def apply(self, state: RunsState, event: RecordedEvent) -> RunsState:
        """Fold `event` and note its run's latest activity (mutates `state`, see _base note 1)."""
        found = self.handled(event)
        if found is None:
            return state
        handler, data = found
        handler(state, event, data)
        run_id = event.meta.run_id
        if run_id is not None:
            run = state["runs"].get(run_id)
            if run is not None:
                # Any event of the run moves its card (its duration runs to its last event);
                # handlers that change a run found another way mark it themselves.
                run["position"] = event.position
                ts = self.ts(event)
                if ts > run["last_at"]:
                    run["last_at"] = ts
        return state

    def view(self, state: RunsState) -> dict[str, Any]:
        runs = [self.run_view(r) for r in state["runs"].values()]
        return {"count": len(runs), "runs": runs}

    def run_view_by_id(self, state: RunsState, run_id: str) -> dict[str, Any] | None:
        """One run's JSON, or None if no such run started."""
        run = state["runs"].get(run_id)
        return None if run is None else self.run_view(run)

    @staticmethod
    def run_view(r: RunRecord) -> dict[str, Any]:
        """The JSON of one run (new containers)."""
        duration = r["duration_ms"]
        if duration is None:
            duration = round((r["last_at"] - r["started_at"]) * 1000.0, 3)
        return {
            "id": r["id"],
            "task": r["task"],
            "pattern": r["pattern"],
            "model": r["model"],
            "workspace": r["workspace"],
            "status": r["status"],
            "simulated": r["simulated"],
            "replay_of": r["replay_of"],
            "started_at": iso(r["started_at"]),
            "finished_at": iso(r["finished_at"]),
            "duration_ms": duration,
            "cost_usd": round(r["cost_usd"], 6),
            "tokens": {
                "input": r["input"],
                "output": r["output"],
                "cache_write": r["cache_write"],
                "cache_read": r["cache_read"],
                "total": r["input"] + r["output"] + r["cache_write"] + r["cache_read"],
            },
            "agents": list(r["agents"]),
            "agent_count": len(r["agents"]),
            "summary": r["summary"],
            "error": r["error"],
            "position": r["position"],
        }

    # -- folding ------------------------------------------------------------

    def _run(self, state: RunsState, event: RecordedEvent, run_id: str) -> RunRecord | None:
        run = state["runs"].get(run_id)
        if run is None:
            report(self.name, event, "run %r never started", run_id)
        return run

    def _started(self, state: RunsState, event: RecordedEvent, d: RunStarted) -> None:
        if d.run_id in state["runs"]:
            report(self.name, event, "run %r already started", d.run_id)
            return
        ts = self.ts(event)
        state["runs"][d.run_id] = {
            "id": d.run_id,
            "task": d.task,
            "pattern": d.pattern,
            "model": d.model,
            "workspace": d.workspace,
            "simulated": d.simulated,
            "replay_of": d.replay_of,
            "status": "running",
            "started_at": ts,
            "finished_at": None,
            "last_at": ts,
            "duration_ms": None,
            "cost_usd": 0.0,
            "input": 0,
            "output": 0,
            "cache_write": 0,
            "cache_read": 0,
            "agents": {},
            "summary": "",
            "error": None,
            "position": event.position,
        }

    def _finish(self, run: RunRecord, event: RecordedEvent, status: str, duration: float) -> None:
        ts = self.ts(event)
        run["position"] = event.position
        run["status"] = status
        run["finished_at"] = ts
        run["last_at"] = max(run["last_at"], ts)
        run["duration_ms"] = (
            duration if duration > 0 else round((ts - run["started_at"]) * 1000.0, 3)
        )

    def _completed(self, state: RunsState, event: RecordedEvent, d: RunCompleted) -> None:
        run = self._run(state, event, d.run_id)
        if run is not None:
            self._finish(run, event, "completed", d.duration_ms)
            run["summary"] = d.summary

    def _failed(self, state: RunsState, event: RecordedEvent, d: RunFailed) -> None:
        run = self._run(state, event, d.run_id)
        if run is not None:
            self._finish(run, event, "failed", d.duration_ms)
            run["error"] = d.error

    def _join(self, state: RunsState, event: RecordedEvent, agent_id: str) -> None:
        run_id = event.meta.run_id
        if run_id is None or agent_id in state["agent_runs"]:
            return
        run = self._run(state, event, run_id)
        if run is not None:
            run["agents"][agent_id] = None
            state["agent_runs"][agent_id] = run_id

    def _agent_created(self, state: RunsState, event: RecordedEvent, d: AgentCreated) -> None:
        self._join(state, event, d.agent_id)

    def _external(self, state: RunsState, event: RecordedEvent, d: ExternalHookReceived) -> None:
        self._join(state, event, external_agent_id(d.session_id))
        sub = d.payload.get("agent_id")
        if isinstance(sub, str) and sub:
            self._join(state, event, external_subagent_id(d.session_id, sub))

    def _model_responded(self, state: RunsState, event: RecordedEvent, d: ModelResponded) -> None:
        run_id = state["agent_runs"].get(d.agent_id) or event.meta.run_id
        if run_id is None:
            return
        run = state["runs"].get(run_id)
        if run is None:
            return
        u = d.usage
        run["position"] = event.position
        run["cost_usd"] += d.cost_usd
        run["input"] += u.input_tokens
        run["output"] += u.output_tokens
        run["cache_write"] += u.cache_creation_input_tokens
        run["cache_read"] += u.cache_read_input_tokens


async def mark_interrupted(
    store: EventStore, runs: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`runs` (the runs view's records), each running one nobody conducts as "interrupted".

    A run's conductor holds the lease `run-<id>` in the log while it works; a
    running run whose lease no live process holds was cut short (`fleet resume`
    takes it up). The records are copied, never changed.
    """
    live = await conducted_runs(store)
    return [
        {**r, "status": "interrupted"}
        if r["status"] == "running" and r["id"] not in live
        else dict(r)
        for r in runs
    ]


async def conducted_runs(store: EventStore) -> frozenset[str]:
    """The ids of the runs a live process conducts now: it holds their `run-<id>` lease."""
    keys = await live_keys(store.leases, "run-")
    return frozenset(key.removeprefix("run-") for key in keys)


def cut_short(runs: Iterable[Mapping[str, Any]], conducted: frozenset[str]) -> frozenset[str]:
    """The agents of the runs among `runs` (records or their views) that are "running"
    in the log and that no live process conducts (`conducted_runs`): their agents'
    work was cut short with them, whatever the log last said of it."""
    return frozenset(
        agent_id
        for r in runs
        if r["status"] == "running" and r["id"] not in conducted
        for agent_id in r["agents"]
    )
