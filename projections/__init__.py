"""Read models folded from the log: agents, fleet, graph, board, runs, and a run's timeline.

Every read model is a pure function of the event log. `ProjectionRunner`
keeps them up to date (exactly once, with checkpoints in the log's own
SQLite file) and answers any of them as of any past position (time travel).

    async with open_store(path) as store, ProjectionRunner(store) as runner:
        await runner.wait_for(position)
        runner.view("agents")                      # JSON the API serves
        await runner.view_at("board", position=120)
        timeline = await load_timeline(store, run_id)   # one run, told event by event
"""

from __future__ import annotations

from ._agent_record import AgentRecord
from ._agents import AgentsProjection, AgentsState
from ._base import FoldProjection, Projection, quiet_reports
from ._board import COLUMNS, BoardProjection, BoardState
from ._critical_path import critical_path
from ._fleet import FleetProjection, FleetState
from ._graph import GraphProjection
from ._graph_state import GraphState
from ._lifecycle import (
    ACTIVE_STATUSES,
    JUDGED_STATUSES,
    STATUSES,
    external_agent_id,
    external_subagent_id,
)
from ._liveness import (
    DEFAULT_STALE_AFTER_S,
    PROCESS_HEADER,
    Host,
    is_loopback_peer,
    judge_liveness,
    judged_card,
    parse_process_header,
    process_start,
    this_host,
)
from ._runner import DEFAULT_PROJECTIONS, ProjectionRunner, default_projections
from ._runs import (
    RUN_STATUSES,
    RunsProjection,
    RunsState,
    conducted_runs,
    cut_short,
    mark_interrupted,
)
from ._scoped import fleet_totals
from ._timeline import Timeline, TimelineEntry, load_timeline
from .errors import (
    InvalidPosition,
    ProjectionError,
    ProjectionFailed,
    ProjectionTimeout,
    RunnerClosed,
    UnknownProjection,
)

__all__ = [
    "ACTIVE_STATUSES",
    "COLUMNS",
    "DEFAULT_PROJECTIONS",
    "DEFAULT_STALE_AFTER_S",
    "JUDGED_STATUSES",
    "PROCESS_HEADER",
    "RUN_STATUSES",
    "STATUSES",
    "AgentRecord",
    "AgentsProjection",
    "AgentsState",
    "BoardProjection",
    "BoardState",
    "FleetProjection",
    "FleetState",
    "FoldProjection",
    "GraphProjection",
    "GraphState",
    "Host",
    "InvalidPosition",
    "Projection",
    "ProjectionError",
    "ProjectionFailed",
    "ProjectionRunner",
    "ProjectionTimeout",
    "RunnerClosed",
    "RunsProjection",
    "RunsState",
    "Timeline",
    "TimelineEntry",
    "UnknownProjection",
    "conducted_runs",
    "critical_path",
    "cut_short",
    "default_projections",
    "external_agent_id",
    "external_subagent_id",
    "fleet_totals",
    "is_loopback_peer",
    "judge_liveness",
    "judged_card",
    "load_timeline",
    "mark_interrupted",
    "parse_process_header",
    "process_start",
    "quiet_reports",
    "this_host",
]
