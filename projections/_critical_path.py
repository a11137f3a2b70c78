"""A run's critical path: the longest chain of work through its agents' waits and files.

The chain is made of work segments (`_graph.py`'s module docstring says how they are
cut): each segment's predecessors are the segments of the agents it waited on or read
from; the path is the chain whose segments add up to the most time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from ._graph_state import GraphState, Segment

__all__ = ["critical_path", "members_of_runs", "segment_at"]


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
