"""The dependency graph's state (`_graph.py`): plain JSON data, checkpointed as it is."""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["GraphState", "Segment"]

# A segment: [start_position, start_ts, end_ts | None, [[agent_id, index, at_ts], ...]]
Segment = list[Any]


class GraphState(TypedDict):
    """Nodes, wait and artifact edges, file writers, work segments and the log's clock."""

    nodes: dict[str, dict[str, Any]]
    # waiter -> awaited -> {"total_ms", "count", "open_since"}
    waits: dict[str, dict[str, dict[str, Any]]]
    # awaited -> {waiter: None} for the waits open now
    awaited: dict[str, dict[str, None]]
    # consumer -> producer -> {"reads": int, "files": {path: None}} (note 3)
    consumes: dict[str, dict[str, dict[str, Any]]]
    # resolved path -> [agent_id, segment index, written at]
    writers: dict[str, list[Any]]
    segments: dict[str, list[Segment]]
    # agent -> how many of its oldest segments were dropped (note 2)
    dropped: dict[str, int]
    clock: float | None
