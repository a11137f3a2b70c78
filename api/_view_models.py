"""Response models of the read models: what `GET /v1/agents`, `/fleet`, `/graph`, `/board`,
`/runs` and a run's timeline answer, field by field.

The projections build their views as plain JSON data (`projections/_agents.py`
and its siblings document the shapes); every handler validates that data
through these models before it answers, and the OpenAPI document is generated
from the same models. So the document cannot drift from what the server sends:
a projection that grows a field without a model here fails the handler's
validation (`extra="forbid"`), and the tests that call every route.

Notes (do not fix without reading this):
1. Timestamps stay strings (`format: date-time`): the projections render them
   with `datetime.isoformat()`, and parsing them here would re-render them in
   pydantic's own form, so the API and `ProjectionRunner.view()` would differ.
2. Status words come from `projections.STATUSES` (agents) and
   `projections.RUN_STATUSES` (runs), and are free text for tool calls: the
   projections and the runtime own those words, and this module must not
   freeze a copy of them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from projections import COLUMNS, JUDGED_STATUSES, RUN_STATUSES, STATUSES

__all__ = [
    "AgentCard",
    "AgentOutput",
    "AgentPage",
    "AgentStatus",
    "Approval",
    "ApprovalCounts",
    "Board",
    "BoardColumn",
    "Bottleneck",
    "ConsumesEdge",
    "Context",
    "CreatedEdge",
    "CriticalPath",
    "Edge",
    "EventPace",
    "ExternalProcessCard",
    "FleetAgents",
    "FleetTotals",
    "Graph",
    "GraphNode",
    "LastToolCall",
    "PathStep",
    "RunCard",
    "RunPage",
    "SystemMessage",
    "Task",
    "TaskMove",
    "Timeline",
    "TimelineAgent",
    "TimelineEntry",
    "Tokens",
    "ToolCalls",
    "WaitsOnEdge",
]

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""An ISO 8601 UTC time, as the projections render it (note 1)."""

_AGENT_STATUSES = STATUSES + JUDGED_STATUSES
AgentStatusName = Literal[_AGENT_STATUSES]  # type: ignore[valid-type]
"""An agent's status: one of `projections.STATUSES`, or (an external session, now) one of
`projections.JUDGED_STATUSES` (note 2)."""

ColumnName = Literal[COLUMNS]  # type: ignore[valid-type]
"""A column of the task board: one of `projections.COLUMNS`."""


class _Out(BaseModel):
    # Unknown fields fail validation: the document must name everything sent.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- agents -------------------------------------------------------------------


class Context(_Out):
    """The context window in use: the last response's input (every bucket) plus its output."""

    used: int
    limit: int = Field(description="the model's context window")
    percent: float = Field(description="used / limit, in percent, to one decimal")


class Tokens(_Out):
    """Tokens summed over every model response."""

    input: int
    output: int
    cache_write: int
    cache_read: int
    total: int


class LastToolCall(_Out):
    """The most recent tool call."""

    name: str
    tool_use_id: str | None
    status: str = Field(
        description='running, ok, error or blocked; now (no `at`), "interrupted" for the '
        "call an agent of a run cut short was making"
    )
    at: Timestamp


class ToolCalls(_Out):
    """Tool calls: how many, how many failed, how many per tool, and the last one."""

    count: int
    errors: int
    by_tool: dict[str, int]
    last: LastToolCall | None


class Approval(_Out):
    """A tool call a hook put on hold for a person ("ask"), and its answer once given."""

    id: str
    agent_id: str
    agent_name: str
    run_id: str | None
    tool_use_id: str
    tool_name: str
    tool_input: dict[str, object]
    reason: str | None = Field(description="why the hook asked")
    status: Literal["pending", "allowed", "denied", "cancelled"]
    requested_at: Timestamp
    expires_at: Timestamp = Field(description="when no answer becomes a denial")
    decided_at: Timestamp | None
    by: str | None = Field(description='who answered ("timeout" when nobody did)')
    decision_reason: str | None


class ApprovalCounts(_Out):
    requested: int
    allowed: int
    denied: int


class SystemMessage(_Out):
    point: str
    hook: str
    text: str = Field(description="a hook's systemMessage: shown to people, not to the model")
    at: Timestamp


class ExternalProcessCard(_Out):
    """An external session's process, as the forwarder of its last hook saw it."""

    pid: int
    start: int = Field(description="the process's start, in clock ticks after its host's boot")
    boot_id: str
    machine_id: str
    pid_ns: str


class AgentCard(_Out):
    """One agent (fleet's own or an external Claude Code session), as the log tells it."""

    id: str
    name: str
    role: str
    model: str
    parent_id: str | None = Field(description="the agent that created it")
    run_id: str | None
    status: AgentStatusName
    task: str | None = Field(description="the current task (the last command), at most 2000 chars")
    context: Context
    tokens: Tokens
    cost_usd: float
    turns: int = Field(description="model responses")
    files_consumed: list[str]
    files_produced: list[str]
    tool_calls: ToolCalls
    blocked_calls: int = Field(description="tool calls a hook blocked or denied")
    compactions: int
    waiting_on: list[str] = Field(description="the agents it sleeps on, while waiting")
    waiting_for: Literal["agents", "approval"] | None = Field(
        description="what a waiting agent waits for: other agents, or a person's approval"
    )
    approval: Approval | None = Field(description="the tool call it holds for approval, if any")
    approvals: ApprovalCounts
    system_messages: list[SystemMessage] = Field(description="the last few hooks said")
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    last_activity_at: Timestamp
    error: str | None
    limit: str | None = Field(description="the budget or limit that stopped it, if one did")
    summary: str
    artifacts: list[str]
    external: bool = Field(description="an external session that posts its hooks")
    source_app: str | None
    engine: Literal["fleet", "claude-code"] | None = Field(
        description="what runs a fleet agent: fleet's loop or a Claude Code session "
        "(None for an external session)"
    )
    session_id: str | None = Field(description="the Claude Code session of a claude-code agent")
    process: ExternalProcessCard | None = Field(
        default=None,
        description="an external session's process, when `fleet hook-forward` on the "
        "server's host said which",
    )
    position: int = Field(
        description="the position of the last event that changed this card "
        "(`GET /v1/agents?changed_after=`)"
    )


class AgentPage(_Out):
    """Agent cards in the order they were created; pass `next` as `after` for the next page."""

    count: int = Field(description="how many agents match, on every page")
    agents: list[AgentCard]
    next: int | None = Field(description="the cursor of the next page; null: no more")


class AgentStatus(_Out):
    """An agent's status, context use, tokens and cost (`Fleet.get_agent_status`)."""

    id: str
    name: str
    role: str
    model: str
    status: AgentStatusName
    context: Context
    tokens: int = Field(description="every token of every response")
    cost_usd: float
    tool_calls: int
    error: str | None


class AgentOutput(_Out):
    """An agent's result: summary, artifacts and files (never the transcript)."""

    id: str
    status: AgentStatusName
    summary: str
    artifacts: list[str]
    files_consumed: list[str]
    files_produced: list[str]
    error: str | None


# -- fleet --------------------------------------------------------------------


class FleetAgents(_Out):
    """Agents by status."""

    total: int
    active: int = Field(description="created, working or waiting")
    by_status: dict[str, int] = Field(
        description=f"every status ({', '.join(STATUSES + JUDGED_STATUSES)}) and how many "
        "agents are in it; now, also interrupted and stale while some external session is "
        "judged so (never at a past position)"
    )


class EventPace(_Out):
    """Events of the log and their pace over the minute ending at the latest one."""

    total: int
    last_minute: int
    per_second: float = Field(description="last_minute / 60")
    series_start: Timestamp | None = Field(description="the second `series[0]` counts")
    series: list[int] = Field(description="events in each of the last 60 seconds, oldest first")
    last_at: Timestamp | None


class FleetTotals(_Out):
    """Totals over the agents in scope (every agent when no filter is given)."""

    agents: FleetAgents
    agents_created: int
    agents_deleted: int
    tokens: Tokens
    cost_usd: float
    context_tokens_in_use: int = Field(description="summed over agents not deleted")
    events: EventPace = Field(description="the whole log's pace: a filter does not scope it")


# -- graph --------------------------------------------------------------------


class GraphNode(_Out):
    """An agent in the dependency graph."""

    id: str
    name: str
    role: str
    status: AgentStatusName
    run_id: str | None
    parent_id: str | None
    external: bool


class CreatedEdge(_Out):
    """`from` created `to`."""

    kind: Literal["created"]
    from_: str = Field(alias="from")
    to: str


class WaitsOnEdge(_Out):
    """`from` waited (or waits now) on `to`."""

    kind: Literal["waits_on"]
    from_: str = Field(alias="from")
    to: str
    count: int = Field(description="closed waits")
    total_ms: float = Field(description="time of the closed waits")
    open: bool = Field(description="whether it waits now")
    open_ms: float = Field(description="how long the open wait has lasted")


class ConsumesEdge(_Out):
    """`from` read files that `to` wrote."""

    kind: Literal["consumes"]
    from_: str = Field(alias="from")
    to: str
    reads: int
    files: list[str] = Field(description="the last files read (at most 20)")


Edge = Annotated[CreatedEdge | WaitsOnEdge | ConsumesEdge, Field(discriminator="kind")]


class Bottleneck(_Out):
    """An agent others waited on, and for how long."""

    agent_id: str
    waited_on_ms: float
    waits: int
    waiters_now: int
    waiting_now_ms: float


class PathStep(_Out):
    """One agent's share of a critical path."""

    agent_id: str
    ms: float


class CriticalPath(_Out):
    """The chain of work a run could not have been shorter than."""

    run_id: str
    total_ms: float
    path: list[PathStep]


class Graph(_Out):
    """Who created whom, who waits on whom, which artifacts flow; bottlenecks, critical paths."""

    nodes: list[GraphNode]
    edges: list[Edge]
    bottlenecks: list[Bottleneck] = Field(description="longest waited on first")
    critical_paths: list[CriticalPath] = Field(description="one per run of the nodes")


# -- board --------------------------------------------------------------------


class TaskMove(_Out):
    """One move of a task (the first is its creation, `from` null)."""

    from_: ColumnName | None = Field(alias="from")
    to: ColumnName
    at: Timestamp
    position: int = Field(description="the move's position in the log")
    assignee: str | None
    reason: str | None


class Task(_Out):
    """A task on the board."""

    id: str
    title: str
    column: ColumnName
    assignee: str | None = Field(description="the agent working on it")
    artifacts: list[str]
    run_id: str | None
    created_at: Timestamp
    updated_at: Timestamp
    returns: int = Field(description="moves back to an earlier column (reviews that failed)")
    history: list[TaskMove]


class BoardColumn(_Out):
    """A column and its tasks, in the order they were created."""

    name: ColumnName
    tasks: list[Task]


class Board(_Out):
    """The task board: always every column, in order."""

    count: int = Field(description="tasks in scope")
    columns: list[BoardColumn]


# -- runs ---------------------------------------------------------------------


class RunCard(_Out):
    """A run: its pattern, status, duration, cost, tokens and agents."""

    id: str
    task: str
    pattern: str | None
    model: str | None
    workspace: str | None
    status: Literal[RUN_STATUSES] = Field(  # type: ignore[valid-type]
        description='running, completed or failed; now (no `at`), "interrupted" for a '
        "run no live process conducts any more (`fleet resume` takes it up)"
    )
    simulated: bool = Field(description="its model answers came from the offline simulator")
    replay_of: str | None = Field(description="the run this one re-executes")
    started_at: Timestamp
    finished_at: Timestamp | None
    duration_ms: float = Field(description="as recorded at the end; else up to its last event")
    cost_usd: float
    tokens: Tokens
    agents: list[str]
    agent_count: int
    summary: str
    error: str | None
    position: int = Field(
        description="the position of the last event that changed this run's card "
        "(`GET /v1/runs?changed_after=`)"
    )


class RunPage(_Out):
    """Runs in the order they started; pass `next` as `after` for the next page."""

    count: int = Field(description="how many runs match, on every page")
    runs: list[RunCard]
    next: int | None = Field(description="the cursor of the next page; null: no more")


# -- timeline -----------------------------------------------------------------


class TimelineAgent(_Out):
    """An agent of the run, as its timeline counts it."""

    id: str
    name: str
    role: str
    model: str
    parent_id: str | None
    status: str
    steps: int = Field(description="model responses")
    tool_calls: int


class TimelineEntry(_Out):
    """One event of the run, told in a line."""

    position: int
    at: Timestamp
    offset_ms: float = Field(description="time since the run started")
    agent_id: str | None
    agent: str = Field(description="the agent's name (empty for run and task events)")
    kind: str = Field(description="run, agent, step, tool, hook, wait, task, compaction, ...")
    type: str = Field(description="the event type")
    step: int | None = Field(description="the agent's model response it belongs to")
    text: str


class Timeline(_Out):
    """What a run did, in log order; pass `next` as `after` for the next page of entries."""

    run_id: str
    task: str
    pattern: str | None
    model: str | None
    workspace: str | None
    simulated: bool
    replay_of: str | None
    status: str = Field(description="running, completed or failed")
    started_at: Timestamp
    duration_ms: float | None
    summary: str
    error: str | None
    first_position: int = Field(description="the position of the run's first event")
    last_position: int = Field(description="the position of the run's last event")
    divergences: int = Field(description="divergences a re-execution recorded")
    agents: list[TimelineAgent]
    entries: list[TimelineEntry]
    next: int | None = Field(description="the cursor of the next page of entries; null: no more")
