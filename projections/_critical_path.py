"""A run's critical path: the longest chain of work through its agents' waits and files.

The chain is made of work segments (`_graph.py`'s module docstring says how they are
cut): each segment's predecessors are the segments of the agents it waited on or read
from; the path is the chain whose segments add up to the most time.

Notes (do not fix without reading this):
1. A graph view computes the path of every run it shows: 46 of the 73 ms of the
   whole graph's view at 1M events (1,404 runs). A run's path changes only when
   its agents' segments do, and a closed segment never changes (its end is set
   once, its dependencies when it starts: `_graph.py`, note 1), so `CriticalPaths`
   remembers each path by what it was computed from: per agent of the run, how
   many segments it has and has dropped, where its first and last start, and
   the last one's end; and the log's clock while a segment is open (an open last
   segment counts up to it). The key holds log positions and timestamps, so a
   finished run hits in a view of the live state and in one as of any later
   position (a time-travel copy) alike. Each hit is a copy: a view is the
   caller's to change. At 1M events the 1,404 paths took 1.7 MB (1.2 KB each);
   at most `MEMO_PATHS` are kept. Whole graph over HTTP at 1M, alternating with
   the code before: 155-162 ms afresh now 120-129, as of past positions 196 now
   164 (`bench/views.py --log`, `BENCHMARKS.md`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from itertools import islice
from typing import Any

from ._graph_state import GraphState, Segment

__all__ = ["CriticalPaths", "critical_path", "members_of_runs", "segment_at"]

# The most paths a `CriticalPaths` keeps; past it, it forgets the older half (note 1).
MEMO_PATHS = 10_000


def segment_at(state: GraphState, agent_id: str, index: int) -> Segment:
    """The segment at an absolute index (it exists: callers look up known keys)."""
    return state["segments"][agent_id][index - state["dropped"].get(agent_id, 0)]


def members_of_runs(state: GraphState, runs: Collection[str]) -> dict[str, list[str]]:
    """The agents of each of `runs`, in one pass over the nodes."""
    members: dict[str, list[str]] = {run: [] for run in runs}
    for agent_id, node in state["nodes"].items():
        found = members.get(node["run_id"])
        if found is not None:
            found.append(agent_id)
    return members


def critical_path(
    state: GraphState, run_id: str, members: Iterable[str] | None = None
) -> dict[str, Any]:
    """The longest chain of work segments of one run (see the module docstring).

    `members`: the run's agents (`members_of_runs`), when known; else the nodes are
    searched for them. A view of many runs gives them: searching every node for each
    run took 5.6 s for the 1,400 runs of a 1M-event log (`BENCHMARKS.md`).
    """
    nodes = state["nodes"]
    all_segments = state["segments"]
    clock = state["clock"] or 0.0
    if members is None:
        members = [a for a, node in nodes.items() if node["run_id"] == run_id]
    order: list[tuple[int, str, int]] = []
    for agent_id in members:
        segments = all_segments.get(agent_id)
        if segments is not None:
            base = state["dropped"].get(agent_id, 0)
            order.extend((s[0], agent_id, base + i) for i, s in enumerate(segments))
    if not order:
        return {"run_id": run_id, "total_ms": 0.0, "path": []}
    order.sort()
    # reach[k]: the longest chain up to the start of segment k, and the
    # dependency it came through with the ms of that dependency's segment it used.
    reach: dict[tuple[str, int], tuple[float, tuple[str, int] | None, float]] = {}
    for _, agent_id, index in order:
        best, via, via_ms = 0.0, None, 0.0
        for pred_agent, pred_index, at in segment_at(state, agent_id, index)[3]:
            key = (pred_agent, pred_index)
            found = reach.get(key)
            if found is None:
                continue  # another run's agent, or a dropped segment
            _, start, end, _ = segment_at(state, pred_agent, pred_index)
            until = at if end is None else min(at, end)
            used = max(0.0, (until - start) * 1000.0)
            if via is None or found[0] + used > best:
                best, via, via_ms = found[0] + used, key, used
        reach[(agent_id, index)] = (best, via, via_ms)

    def whole(key: tuple[str, int]) -> float:
        segment = segment_at(state, *key)
        start: float = segment[1]
        end: float = clock if segment[2] is None else segment[2]
        return max(0.0, (end - start) * 1000.0)

    last = max(reach, key=lambda k: (reach[k][0] + whole(k), segment_at(state, *k)[0]))
    total = reach[last][0] + whole(last)
    steps: list[tuple[str, float]] = [(last[0], whole(last))]
    cursor = last
    while True:
        _, via, used = reach[cursor]
        if via is None:
            break
        steps.append((via[0], used))
        cursor = via
    path: list[dict[str, Any]] = []
    for agent_id, ms in reversed(steps):
        if path and path[-1]["agent_id"] == agent_id:
            path[-1]["ms"] += ms
        else:
            path.append({"agent_id": agent_id, "ms": ms})
    for step in path:
        step["ms"] = round(step["ms"], 3)
    return {"run_id": run_id, "total_ms": round(total, 3), "path": path}


class CriticalPaths:
    """`critical_path`, remembered while a run's segments stay as they were (note 1)."""

    def __init__(self, limit: int = MEMO_PATHS) -> None:
        self._limit = limit
        self._memo: dict[tuple[Any, ...], dict[str, Any]] = {}

    def __len__(self) -> int:
        """How many paths are remembered."""
        return len(self._memo)

    def of(self, state: GraphState, run_id: str, members: list[str]) -> dict[str, Any]:
        """The critical path of `run_id`, whose agents are `members` (`members_of_runs`)."""
        key = _key(state, run_id, members)
        path = self._memo.get(key)
        if path is None:
            path = critical_path(state, run_id, members)
            memo = self._memo
            if len(memo) >= self._limit:
                for old in list(islice(memo, max(1, self._limit // 2))):
                    memo.pop(old, None)
            memo[key] = path
        return {**path, "path": [dict(step) for step in path["path"]]}


def _key(state: GraphState, run_id: str, members: list[str]) -> tuple[Any, ...]:
    """What the path of `run_id` is computed from (note 1)."""
    segments = state["segments"]
    dropped = state["dropped"]
    key: list[Any] = [run_id]
    open_ = False
    for agent_id in members:
        mine = segments.get(agent_id)
        if not mine:
            key.append(agent_id)
            continue
        last = mine[-1]
        open_ = open_ or last[2] is None
        key.append((agent_id, dropped.get(agent_id, 0), len(mine), mine[0][0], last[0], last[2]))
    if open_:
        key.append(state["clock"])
    return tuple(key)
