"""The dependency graph: who created whom, who waits on whom, which artifacts flow.

View shape (`GraphProjection.view`; `scoped_view(state, run_id=, agent_id=,
statuses=, role=, latest_runs=)` is the same restricted to the agents that
match, and `run_view(state, run_id)` to one run)::

    {"nodes": [{"id", "name", "role", "status", "run_id", "parent_id", "external"}],
     "edges": [
        {"kind": "created",  "from": parent, "to": child},
        {"kind": "waits_on", "from": waiter, "to": awaited, "count": int,
         "total_ms": float, "open": bool, "open_ms": float},
        {"kind": "consumes", "from": consumer, "to": producer, "reads": int,
         "files": [str]}],                    # the last MAX_EDGE_FILES files read
     "bottlenecks": [{"agent_id", "waited_on_ms", "waits", "waiters_now", "waiting_now_ms"}],
     "critical_paths": [{"run_id", "total_ms", "path": [{"agent_id", "ms"}]}]}

Waits: AgentWaiting opens a wait of the agent on each agent in `on`. A wait
on X closes when X completes, fails or is deleted (lasting until then, so the
slow one of three awaited scouts carries the most), else when the waiter
wakes (lasting AgentWoke's `waited_ms`, or the time between the two events
when that is 0); failing or being deleted closes an agent's own waits.
"consumes" links an agent that read a file to the agent that last wrote it
(ToolCallCompleted.files_written or AgentCompleted.artifacts) before the read;
relative paths are resolved against each agent's workspace. Bottlenecks are
the agents others waited on longest, open waits counted up to the latest
event the graph folds ("now" is the log's clock, so a view is a function of
the log), sorted by `waited_on_ms`.

Critical path (note 1). Each agent's life is cut into segments of work: a
segment starts when the agent is created, woken, commanded again or reads
another agent's artifact, and ends when it waits, completes, fails or is
deleted. A segment depends, each at a moment, on: the agent's previous
segment (at its end), its creator's segment (at the creation), the last
segment of each agent whose change woke it (at that segment's end, or the
wake), and the segment that wrote an artifact it read (at the write). Every
dependency started at an earlier log position, so the segments form a DAG in
position order. The critical path is its longest chain, where a dependency
counts only up to its moment and the last segment counts whole: the time the
run could not have been shorter than, given what waited on what. It is
reported per run with consecutive segments of one agent merged. The
orchestrator's sleep is not counted: only the chain through what it waited on.

Notes (do not fix without reading this):
1. Agents alone make a cyclic graph (the orchestrator creates a scout, then
   waits on it), so a longest path over agents is ill-defined; cutting lives
   into segments at every wake-up and every artifact read is what makes it a
   DAG. Do not add a dependency to a segment that is already open.
2. An agent keeps its last `MAX_SEGMENTS` segments: a long-lived agent that
   waits and reads others' files forever would otherwise grow the state with
   the log. A dependency on a dropped segment is ignored, so the critical
   path of such a run covers its recent part; a run of ordinary agents (a few
   segments each) is exact. Segment indexes are absolute: `dropped` counts
   the ones gone.
3. A "consumes" edge keeps how many reads it stands for and the last
   `MAX_EDGE_FILES` distinct files read, not every file: agents sharing a
   large tree would otherwise keep agents x agents x files names.
4. Every event decodes its own copy of each id and path it names. The state
   keeps one object per string: an agent id is the node's own (`_id`), and
   names, roles, workspaces and paths are interned (a bounded vocabulary;
   ids are not, as an interned string is never freed on Python 3.12). At 1M
   events this made the time-travel snapshot smaller and faster to load
   (`BENCHMARKS.md`), and the live state smaller.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from sys import intern
from typing import Any

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
    EventModel,
    ExternalHookReceived,
    RecordedEvent,
    ToolCallCompleted,
)

from ._base import FoldProjection
from ._critical_path import CriticalPaths, members_of_runs
from ._graph_state import GraphState, Segment
from ._lean import Lean
from ._lifecycle import EXTERNAL_ROLE, external_facts, external_status, next_status, resolve_path

__all__ = ["MAX_EDGE_FILES", "MAX_SEGMENTS", "GraphProjection", "GraphState"]

MAX_SEGMENTS = 256  # per agent (note 2)
MAX_EDGE_FILES = 20  # per consumes edge (note 3)


class GraphProjection(FoldProjection[GraphState]):
    """Created / waits-on / consumes edges, bottlenecks and critical paths."""

    name = "graph"
    # 2, 3: the state changed shape before the first release; 4: "completed";
    # 5: external subagents are nodes of their own; 6: approvals; 7: a Claude Code
    # session's StopFailure fails it
    version = 7
    ignores = frozenset(
        {
            "ToolCallInterrupted",
            "RunStarted",
            "RunCompleted",
            "RunFailed",
            "ModelResponded",
            "ToolCallRequested",
            "HookInvoked",
            "ContextCompacted",
            "TaskCreated",
            "TaskMoved",
            "ReplayDiverged",
            "ChatMessagePosted",
            "TelemetryReceived",
        }
    )

    # A tool call's result is read for the files it touched, never its output (`_lean.py`).
    lean = (Lean(ToolCallCompleted, ("agent_id", "files_read", "files_written")),)

    def __init__(self) -> None:
        super().__init__()
        self._paths = CriticalPaths()  # `_critical_path.py`, note 1
        self.handlers.update(
            {
                AgentCreated: self._created,
                AgentCommanded: self._commanded,
                AgentWaiting: self._waiting,
                AgentWoke: self._woke,
                ApprovalRequested: self._approval_requested,
                ApprovalDecided: self._approval_decided,
                AgentCompleted: self._completed,
                AgentFailed: self._stopped,
                AgentDeleted: self._stopped,
                ToolCallCompleted: self._tool_completed,
                ExternalHookReceived: self._external,
            }
        )

    def initial(self) -> GraphState:
        return {
            "nodes": {},
            "waits": {},
            "awaited": {},
            "consumes": {},
            "writers": {},
            "segments": {},
            "dropped": {},
            "clock": None,
        }

    @property
    def types(self) -> frozenset[type[EventModel]] | None:
        """The handlers' classes: `apply` below folds nothing else."""
        return frozenset(self.handlers)

    def apply(self, state: GraphState, event: RecordedEvent) -> GraphState:
        """Fold `event` and advance the clock (mutates `state`, see _base note 1)."""
        found = self.handled(event)
        if found is not None:
            ts = self.ts(event)
            clock = state["clock"]
            if clock is None or ts > clock:
                state["clock"] = ts
            handler, data = found
            handler(state, event, data)
        return state

    # -- queries ------------------------------------------------------------

    def view(self, state: GraphState) -> dict[str, Any]:
        return self._view(state, set(state["nodes"]))

    def run_view(self, state: GraphState, run_id: str) -> dict[str, Any]:
        """The graph restricted to the agents of one run."""
        return self.scoped_view(state, run_id=run_id)

    def scoped_view(
        self,
        state: GraphState,
        *,
        run_id: str | None = None,
        agent_id: str | None = None,
        statuses: Collection[str] = (),
        role: str | None = None,
        latest_runs: int | None = None,
        judged: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The graph restricted to the agents that match every filter given.

        `latest_runs=N` keeps, of those, the agents of the N runs whose agents
        were created last (the agents outside any run count as one): what a
        dashboard draws of a log of many runs. Nodes are those agents, edges
        those between two of them, bottlenecks are counted over those edges,
        and critical paths are those of their runs. No filter is the whole
        graph. `judged`: the status now of agents whose status is answered otherwise than
        the log's (external sessions, api/_routes_views.py note 5), which `statuses` sees
        instead. `state` is not mutated.
        """
        nodes = state["nodes"]
        judged = judged or {}
        ids = {
            a
            for a, n in nodes.items()
            if (run_id is None or n["run_id"] == run_id)
            and (agent_id is None or a == agent_id)
            and (not statuses or judged.get(a, n["status"]) in statuses)
            and (role is None or n["role"] == role)
        }
        if latest_runs is not None:
            runs: dict[str | None, None] = {}
            for a in reversed(nodes):  # the nodes are in the order their agents were created
                if a in ids:
                    runs.setdefault(nodes[a]["run_id"], None)
                    if len(runs) == latest_runs:
                        break
            ids = {a for a in ids if nodes[a]["run_id"] in runs}
        return self._view(state, ids)

    def _view(self, state: GraphState, ids: set[str]) -> dict[str, Any]:
        nodes = state["nodes"]
        clock = state["clock"] or 0.0
        edges: list[dict[str, Any]] = []
        for agent_id, node in nodes.items():
            parent = node["parent_id"]
            if agent_id in ids and parent in ids:
                edges.append({"kind": "created", "from": parent, "to": agent_id})
        waited: dict[str, list[float]] = {}
        for waiter, targets in state["waits"].items():
            if waiter not in ids:
                continue
            for target, w in targets.items():
                if target not in ids:
                    continue
                since = w["open_since"]
                open_ms = 0.0 if since is None else max(0.0, (clock - since) * 1000.0)
                edges.append(
                    {
                        "kind": "waits_on",
                        "from": waiter,
                        "to": target,
                        "count": w["count"],
                        "total_ms": round(w["total_ms"], 3),
                        "open": since is not None,
                        "open_ms": round(open_ms, 3),
                    }
                )
                acc = waited.setdefault(target, [0.0, 0, 0, 0.0])
                acc[0] += w["total_ms"] + open_ms
                acc[1] += w["count"] + (since is not None)
                acc[2] += since is not None
                acc[3] += open_ms
        for consumer, producers in state["consumes"].items():
            if consumer not in ids:
                continue
            for producer, flow in producers.items():
                if producer in ids:
                    edges.append(
                        {
                            "kind": "consumes",
                            "from": consumer,
                            "to": producer,
                            "reads": flow["reads"],
                            "files": list(flow["files"]),
                        }
                    )
        ranked = sorted(waited.items(), key=lambda item: (-item[1][0], -item[1][3], item[0]))
        bottlenecks = [
            {
                "agent_id": agent_id,
                "waited_on_ms": round(acc[0], 3),
                "waits": acc[1],
                "waiters_now": acc[2],
                "waiting_now_ms": round(acc[3], 3),
            }
            for agent_id, acc in ranked
        ]
        runs: dict[str, None] = {}
        for agent_id in ids:
            r = nodes[agent_id]["run_id"]
            if r is not None:
                runs[r] = None
        members = members_of_runs(state, runs)
        return {
            "nodes": [
                {
                    "id": n["id"],
                    "name": n["name"],
                    "role": n["role"],
                    "status": n["status"],
                    "run_id": n["run_id"],
                    "parent_id": n["parent_id"],
                    "external": n["external"],
                }
                for agent_id, n in nodes.items()
                if agent_id in ids
            ],
            "edges": edges,
            "bottlenecks": bottlenecks,
            "critical_paths": [self._paths.of(state, r, members[r]) for r in sorted(runs)],
        }

    # -- folding ------------------------------------------------------------

    def _created(self, state: GraphState, event: RecordedEvent, d: AgentCreated) -> None:
        if d.agent_id in state["nodes"]:
            return  # the agents projection reports it
        parent_id = None if d.parent_id is None else _id(state, d.parent_id)
        state["nodes"][d.agent_id] = _node(
            d.agent_id, d.name, d.role, event.meta.run_id, parent_id, d.workspace, d.external
        )
        ts = self.ts(event)
        preds = []
        if parent_id is not None and parent_id in state["segments"]:
            preds.append([parent_id, _last(state, parent_id), ts])
        state["segments"][d.agent_id] = [[event.position, ts, None, preds]]

    def _commanded(self, state: GraphState, event: RecordedEvent, d: AgentCommanded) -> None:
        node = _status(state, d.agent_id, "working")
        if node is None:
            return
        by = _id(state, d.by) if d.by != d.agent_id and d.by in state["segments"] else None
        extra = [[by, _last(state, by), self.ts(event)]] if by else []
        _resume(state, d.agent_id, event.position, self.ts(event), extra)

    def _waiting(self, state: GraphState, event: RecordedEvent, d: AgentWaiting) -> None:
        if _status(state, d.agent_id, "waiting") is None:
            return
        ts = self.ts(event)
        _end(state, d.agent_id, ts)
        waiter = _id(state, d.agent_id)
        waits = state["waits"].setdefault(waiter, {})
        for target in d.on:
            if target in state["nodes"] and target != waiter:
                target = _id(state, target)
                w = waits.setdefault(target, {"total_ms": 0.0, "count": 0, "open_since": None})
                if w["open_since"] is None:
                    w["open_since"] = ts
                    state["awaited"].setdefault(target, {})[waiter] = None

    def _woke(self, state: GraphState, event: RecordedEvent, d: AgentWoke) -> None:
        if _status(state, d.agent_id, "working") is None:
            return
        _close_waits(state, d.agent_id, self.ts(event), d.waited_ms)
        segments = state["segments"]
        ts = self.ts(event)
        extra = [
            [_id(state, c), _last(state, c), ts]
            for c in d.changed
            if c in segments and c != d.agent_id
        ]
        _resume(state, d.agent_id, event.position, self.ts(event), extra)

    def _approval_requested(
        self, state: GraphState, event: RecordedEvent, d: ApprovalRequested
    ) -> None:
        _status(state, d.agent_id, "waiting")  # for a person: no "waits on" edge

    def _approval_decided(
        self, state: GraphState, event: RecordedEvent, d: ApprovalDecided
    ) -> None:
        node = state["nodes"].get(d.agent_id)
        if node is not None and node["status"] == "waiting":
            node["status"] = "working"

    def _completed(self, state: GraphState, event: RecordedEvent, d: AgentCompleted) -> None:
        node = _status(state, d.agent_id, "completed")
        if node is None:
            return
        ts = self.ts(event)
        index, workspace = _last(state, d.agent_id), node["workspace"]
        for path in d.artifacts:
            state["writers"][intern(resolve_path(path, workspace))] = [node["id"], index, ts]
        _release_waiters(state, d.agent_id, ts)
        _end(state, d.agent_id, ts)

    def _stopped(
        self, state: GraphState, event: RecordedEvent, d: AgentFailed | AgentDeleted
    ) -> None:
        status = "failed" if isinstance(d, AgentFailed) else "deleted"
        if _status(state, d.agent_id, status) is None:
            return
        ts = self.ts(event)
        _close_waits(state, d.agent_id, ts, 0.0)
        _release_waiters(state, d.agent_id, ts)
        _end(state, d.agent_id, ts)

    def _tool_completed(
        self, state: GraphState, event: RecordedEvent, d: ToolCallCompleted
    ) -> None:
        node = state["nodes"].get(d.agent_id)
        if node is None or not (d.files_read or d.files_written):
            return
        workspace = node["workspace"]
        _files(
            state,
            event.position,
            self.ts(event),
            node["id"],
            [(intern(p), intern(resolve_path(p, workspace))) for p in d.files_read],
            [intern(resolve_path(p, workspace)) for p in d.files_written],
        )

    def _external(self, state: GraphState, event: RecordedEvent, d: ExternalHookReceived) -> None:
        f = external_facts(d)
        agent_id = f.agent_id
        if f.parent_id is not None:
            self._external_node(state, event, f.parent_id, f.session_name, None)
        self._external_node(state, event, agent_id, f.name, f.parent_id)
        if f.status is not None:
            node = state["nodes"][agent_id]
            node["status"] = external_status(node["status"], f)
            if f.status == "working":
                _resume(state, agent_id, event.position, self.ts(event), [])
            else:
                ts = self.ts(event)
                if f.status in ("completed", "failed"):
                    _release_waiters(state, agent_id, ts)
                _end(state, agent_id, ts)
        if f.files_read or f.files_written:
            _files(
                state,
                event.position,
                self.ts(event),
                _id(state, agent_id),
                [(p, p) for p in map(intern, f.files_read)],
                [intern(p) for p in f.files_written],
            )

    def _external_node(
        self,
        state: GraphState,
        event: RecordedEvent,
        agent_id: str,
        name: str,
        parent_id: str | None,
    ) -> None:
        """An external agent's node and first segment, made on first sight (a subagent's
        segment depends on its session's, as a created agent's on its creator's)."""
        if agent_id in state["nodes"]:
            return
        ts = self.ts(event)
        parent_id = None if parent_id is None else _id(state, parent_id)
        state["nodes"][agent_id] = _node(
            agent_id, name, EXTERNAL_ROLE, event.meta.run_id, parent_id, "", True
        )
        preds = []
        if parent_id is not None and parent_id in state["segments"]:
            preds.append([parent_id, _last(state, parent_id), ts])
        state["segments"][agent_id] = [[event.position, ts, None, preds]]


def _node(
    agent_id: str,
    name: str,
    role: str,
    run_id: str | None,
    parent_id: str | None,
    workspace: str,
    external: bool,
) -> dict[str, Any]:
    return {
        "id": agent_id,
        "name": intern(name),
        "role": intern(role),
        "status": "created",
        "run_id": run_id,
        "parent_id": parent_id,
        "workspace": intern(workspace),
        "external": external,
    }


def _id(state: GraphState, agent_id: str) -> str:
    """The node's own id object for `agent_id` (note 4)."""
    node = state["nodes"].get(agent_id)
    return agent_id if node is None else node["id"]


def _status(state: GraphState, agent_id: str, status: str) -> dict[str, Any] | None:
    node = state["nodes"].get(agent_id)
    if node is not None:
        node["status"] = next_status(node["status"], status)
    return node


def _end(state: GraphState, agent_id: str, ts: float) -> None:
    last = state["segments"][agent_id][-1]
    if last[2] is None:
        last[2] = ts


def _resume(
    state: GraphState, agent_id: str, position: int, ts: float, extra: list[list[Any]]
) -> None:
    """Start a new segment unless one is open (a first command continues the creation's)."""
    previous = state["segments"][agent_id][-1]
    if previous[2] is None:
        return
    preds = [[_id(state, agent_id), _last(state, agent_id), previous[2]], *extra]
    _add_segment(state, agent_id, [position, ts, None, preds])


def _close_wait(state: GraphState, waiter: str, target: str, ms: float) -> None:
    w = state["waits"][waiter][target]
    w["total_ms"] += ms
    w["count"] += 1
    w["open_since"] = None
    awaited = state["awaited"].get(target)
    if awaited is not None:
        awaited.pop(waiter, None)
        if not awaited:
            del state["awaited"][target]


def _close_waits(state: GraphState, waiter: str, ts: float, waited_ms: float) -> None:
    """Close the waiter's open waits (it woke, failed or was deleted)."""
    for target, w in state["waits"].get(waiter, {}).items():
        since = w["open_since"]
        if since is not None:
            ms = waited_ms if waited_ms > 0 else max(0.0, (ts - since) * 1000.0)
            _close_wait(state, waiter, target, ms)


def _release_waiters(state: GraphState, target: str, ts: float) -> None:
    """Close every open wait on `target`: it completed, failed or was deleted."""
    for waiter in list(state["awaited"].get(target, ())):
        since = state["waits"][waiter][target]["open_since"]
        _close_wait(state, waiter, target, max(0.0, (ts - since) * 1000.0))


def _files(
    state: GraphState,
    position: int,
    ts: float,
    agent_id: str,
    read: list[tuple[str, str]],
    written: list[str],
) -> None:
    writers = state["writers"]
    preds: list[list[Any]] = []
    for shown, key in read:
        writer = writers.get(key)
        if writer is None or writer[0] == agent_id:
            continue
        producers = state["consumes"].setdefault(agent_id, {})
        flow = producers.get(writer[0])
        if flow is None:
            flow = producers[writer[0]] = {"reads": 0, "files": {}}
        flow["reads"] += 1
        files = flow["files"]
        files.pop(shown, None)  # the most recent last
        files[shown] = None
        if len(files) > MAX_EDGE_FILES:  # note 3
            del files[next(iter(files))]
        if not any(p[0] == writer[0] and p[1] == writer[1] for p in preds):
            preds.append(list(writer))
    current = state["segments"][agent_id][-1]
    if (
        preds
        and current[2] is None
        and any(not any(q[0] == p[0] and q[1] == p[1] for q in current[3]) for p in preds)
    ):
        # Reading another agent's artifact starts a new segment (note 1).
        current[2] = ts
        previous = _last(state, agent_id)
        _add_segment(state, agent_id, [position, ts, None, [[agent_id, previous, ts], *preds]])
    index = _last(state, agent_id)
    for key in written:
        writers[key] = [agent_id, index, ts]


def _last(state: GraphState, agent_id: str) -> int:
    """The absolute index of the agent's current (last) segment."""
    return state["dropped"].get(agent_id, 0) + len(state["segments"][agent_id]) - 1


def _add_segment(state: GraphState, agent_id: str, segment: Segment) -> None:
    segments = state["segments"][agent_id]
    segments.append(segment)
    if len(segments) > MAX_SEGMENTS:  # note 2
        del segments[0]
        state["dropped"][agent_id] = state["dropped"].get(agent_id, 0) + 1
