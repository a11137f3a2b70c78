"""The API's pydantic models: query parameters, bodies and responses (also the OpenAPI schemas).

Query models forbid unknown parameters: a misspelt filter (`?agent=` for
`?agent_id=`) is an error, never a silently wider result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from events import EVENT_TYPES, ID_PATTERN, EventData
from projections import JUDGED_STATUSES, RUN_STATUSES, STATUSES

from ._limits import ACTOR_MAX_CHARS, REASON_MAX_CHARS, actor, reason

__all__ = [
    "ID_PATTERN",
    "MAX_PAGE",
    "MAX_WAIT_S",
    "Actor",
    "AgentsQuery",
    "BoardQuery",
    "EventOut",
    "EventPage",
    "EventType",
    "EventsQuery",
    "GraphQuery",
    "Health",
    "IngestAccepted",
    "IngestQuery",
    "MetaOut",
    "NoQuery",
    "Problem",
    "Reason",
    "RunsQuery",
    "ScopedQuery",
    "StreamQuery",
    "TimelineQuery",
    "ViewQuery",
]


# The lengths in the schema too (OpenAPI shows them); the rules are `_limits.py`'s.
Actor = Annotated[str, Field(min_length=1, max_length=ACTOR_MAX_CHARS), AfterValidator(actor)]
"""Who does something (a command's `by`, an approval's `who`, a message's `author`)."""

Reason = Annotated[str, Field(max_length=REASON_MAX_CHARS), AfterValidator(reason)]
"""Why a person decided as they did (an approval's `reason`)."""

Position = Annotated[int, Field(ge=0, le=2**62)]
FilterText = Annotated[str, Field(min_length=1, max_length=200)]
EventType = Annotated[str, Field(json_schema_extra={"enum": sorted(EVENT_TYPES)})]
"""An event type's name (checked against the catalogue; the schema lists them)."""
MAX_PAGE = 1000
"""The largest page of `GET /v1/events`."""


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoQuery(_Query):
    """No query parameters: any is refused with 400 naming it."""


def _known_types(values: list[str]) -> list[str]:
    unknown = sorted(set(values) - EVENT_TYPES.keys())
    if unknown:
        raise ValueError(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}"
        )
    return values


class _EventFilters(_Query):
    run_id: FilterText | None = Field(default=None, description="only events of this run")
    agent_id: FilterText | None = Field(default=None, description="only events of this agent")
    stream_id: list[FilterText] = Field(
        default_factory=list, max_length=50, description="only these streams (repeatable)"
    )
    type: list[EventType] = Field(
        default_factory=list, max_length=50, description="only these event types (repeatable)"
    )

    _check_types = field_validator("type")(_known_types)


class EventsQuery(_EventFilters):
    """`GET /v1/events`: filters, a position range and a page size."""

    after: Position = Field(
        default=0, description="only events after this position (the paging cursor)"
    )
    until: Position | None = Field(
        default=None, description="only events at or before this position"
    )
    limit: int | None = Field(
        default=None, ge=1, le=MAX_PAGE, description="page size (default 100, at most 1000)"
    )


class StreamQuery(_EventFilters):
    """`GET /v1/events/stream`: filters and where to start (Last-Event-ID wins over `from`)."""

    from_: Position | None = Field(
        default=None,
        alias="from",
        description="send events after this position first (default: only new events)",
    )


MAX_WAIT_S = 30.0
"""The longest `wait` a view accepts, in seconds."""

_AGENT_STATUSES = STATUSES + JUDGED_STATUSES
AgentStatusFilter = Literal[_AGENT_STATUSES]  # type: ignore[valid-type]
"""An agent status a filter may name: one of `projections.STATUSES` or `JUDGED_STATUSES`."""
RunStatusFilter = Literal[RUN_STATUSES]  # type: ignore[valid-type]
"""A run status a filter may name (`projections.RUN_STATUSES`): a misspelt one is 400, not
an empty page."""


def _at(what: str = "the view") -> Any:
    return Field(default=None, description=f"{what} as of this past position (time travel)")


def _min_position() -> Any:
    return Field(
        default=None,
        description="answer once the view reflects this position: at once when it does; else "
        "wait up to `wait` seconds (without `wait`: 400 beyond the log's head, else up to 5 s)",
    )


def _wait() -> Any:
    return Field(
        default=None,
        ge=0,
        allow_inf_nan=False,  # nan failed "at most 30", which says nothing of it
        le=MAX_WAIT_S,
        description="with `min_position`: wait up to this many seconds (at most 30) for the log "
        "to reach it, then answer with the view as it is (`Fleet-Position` says where)",
    )


def _after(what: str) -> Any:
    return Field(default=0, description=f"the paging cursor: {what} after this one (`next`)")


def _limit() -> Any:
    return Field(
        default=None, ge=1, le=MAX_PAGE, description="page size, at most 1000 (default: all)"
    )


class _Polled(_Query):
    """`min_position` and `wait`, checked together; `at` excludes both where it exists."""

    @model_validator(mode="after")
    def _check_wait(self) -> Self:
        at = getattr(self, "at", None)
        min_position: int | None = getattr(self, "min_position", None)
        wait: float | None = getattr(self, "wait", None)
        if at is not None and (min_position is not None or wait is not None):
            raise ValueError("`at` (a past position) cannot be combined with min_position or wait")
        if wait is not None and min_position is None:
            raise ValueError("`wait` needs `min_position`: the position to wait for")
        return self


class ViewQuery(_Polled):
    """One item of a view (an agent, a run) now, at a past position, or once it has caught up."""

    at: Position | None = _at("the item")
    min_position: Position | None = _min_position()
    wait: float | None = _wait()


class ScopedQuery(_Polled):
    """`GET /v1/fleet` and `/v1/graph`: the view over the agents that match every filter."""

    run_id: FilterText | None = Field(default=None, description="only agents of this run")
    agent_id: FilterText | None = Field(default=None, description="only this agent")
    status: list[AgentStatusFilter] = Field(
        default_factory=list, description="only agents in these statuses (repeatable)"
    )
    role: FilterText | None = Field(default=None, description="only agents with this role")
    at: Position | None = _at()
    min_position: Position | None = _min_position()
    wait: float | None = _wait()


class _Changes(_Polled):
    """`changed_after` of a list whose items say the position that last changed them."""

    changed_after: Position | None = Field(
        default=None,
        description="only the items whose card changed after this position (its `position` "
        "is greater): a client holding the list as of P asks for what changed since, instead "
        "of every card again; 400 when P is beyond the list's position",
    )

    @model_validator(mode="after")
    def _check_changed_after(self) -> Self:
        at: int | None = getattr(self, "at", None)
        if at is not None and self.changed_after is not None and self.changed_after > at:
            raise ValueError(
                f"changed_after ({self.changed_after}) is after at ({at}): "
                "no card of a view changed after the view's own position"
            )
        return self


class GraphQuery(ScopedQuery):
    """`GET /v1/graph`: the scoped view's filters, and the latest runs only."""

    latest_runs: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PAGE,
        description="only the agents of the N runs whose agents were created last (the "
        "agents outside any run count as one): what a dashboard draws of many runs",
    )


class AgentsQuery(_Changes):
    """`GET /v1/agents`: agent cards, filtered and paged."""

    run_id: FilterText | None = Field(default=None, description="only agents of this run")
    agent_id: list[FilterText] = Field(
        default_factory=list,
        max_length=MAX_PAGE,
        description="only these agents (repeatable): a client holding the list as of a later "
        "position asks for the cards of those that changed since, as of an earlier one",
    )
    status: list[AgentStatusFilter] = Field(
        default_factory=list, description="only agents in these statuses (repeatable)"
    )
    role: FilterText | None = Field(default=None, description="only agents with this role")
    model: FilterText | None = Field(default=None, description="only agents on this model")
    parent_id: FilterText | None = Field(
        default=None, description="only agents created by this agent"
    )
    external: bool | None = Field(
        default=None, description="only external (or only internal) agents"
    )
    at: Position | None = _at()
    min_position: Position | None = _min_position()
    wait: float | None = _wait()
    after: Position = _after("agents created")
    limit: int | None = _limit()


class BoardQuery(_Changes):
    """`GET /v1/board`: the tasks that match every filter, in all six columns (a task's
    card changed at its last move: the last entry of its `history`)."""

    run_id: FilterText | None = Field(default=None, description="only tasks of this run")
    agent_id: FilterText | None = Field(
        default=None, description="only tasks assigned to this agent"
    )
    at: Position | None = _at()
    min_position: Position | None = _min_position()
    wait: float | None = _wait()


class RunsQuery(_Changes):
    """`GET /v1/runs`: runs, filtered and paged."""

    run_id: list[FilterText] = Field(
        default_factory=list, max_length=MAX_PAGE, description="only these runs (repeatable)"
    )
    agent_id: FilterText | None = Field(default=None, description="only the run of this agent")
    status: list[RunStatusFilter] = Field(
        default_factory=list,
        max_length=10,
        description="only runs in these statuses (repeatable)",
    )
    at: Position | None = _at()
    min_position: Position | None = _min_position()
    wait: float | None = _wait()
    after: Position = _after("runs started")
    limit: int | None = _limit()


class TimelineQuery(_Polled):
    """`GET /v1/runs/{run_id}/timeline`: its entries, filtered and paged by position."""

    agent_id: FilterText | None = Field(default=None, description="only entries of this agent")
    min_position: Position | None = _min_position()
    wait: float | None = _wait()
    after: Position = _after("entries at positions")
    limit: int | None = _limit()


class IngestQuery(_Query):
    """`POST /v1/hooks/ingest`: who sent the payload (else the `X-Fleet-Source-App` header)."""

    source_app: str | None = Field(
        default=None, min_length=1, max_length=64, description="the sender, e.g. claude-code"
    )


# -- responses ----------------------------------------------------------------


class MetaOut(BaseModel):
    """Who and what an event belongs to, and what caused it."""

    run_id: str | None
    agent_id: str | None
    parent_id: str | None
    causation_id: int | None
    correlation_id: str | None
    source: str


class EventOut(BaseModel):
    """One event of the log, as `RecordedEvent.to_json_dict()` renders it (and each SSE `data`)."""

    position: int = Field(description="global, gap-free; the SSE id")
    stream_id: str
    version: int = Field(description="1-based within the stream")
    type: str
    data: EventData | dict[str, Any]
    meta: MetaOut
    recorded_at: datetime


class EventPage(BaseModel):
    """A page of events; pass `next` as `after` for the next page (null: no more for now)."""

    events: list[EventOut]
    next: int | None
    head: int = Field(description="the log's last position when the page was read")


class Health(BaseModel):
    """The server is up; where the log and its readers are."""

    status: Literal["ok", "degraded"]
    head: int = Field(description="the log's last position")
    projections: int = Field(description="the position the projections have applied")
    broadcast: int = Field(description="the position the live stream has fanned out")
    subscribers: int = Field(description="live SSE subscribers")
    streams: int = Field(description="open SSE responses (catching up or live)")
    cut_offs: int = Field(description="SSE subscribers cut off for falling behind, since start")
    auth: bool = Field(description="whether a bearer token is required")
    store: Literal["ok", "degraded"] = Field(
        default="ok",
        description="degraded from a write the log refused (disk full, I/O error) until a "
        "write works again (this check retries one at most once a second)",
    )
    store_error: str | None = Field(default=None, description="why the log cannot be written")


class IngestAccepted(BaseModel):
    """Where an ingested hook payload was appended."""

    position: int
    stream_id: str
    version: int


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="for invalid input: each error's location, message and rule"
    )
