"""The typed catalogue of events: one frozen pydantic model per fact.

Each event class is a fact in the past tense. Its `type` field is the
discriminator stored in the log; `SCHEMA_VERSION` is bumped when a field is
added, and an upcaster in `_upcasting.py` lifts rows stored by older schemas.

Notes (do not fix without reading this):
1. `data`-like fields that hold arbitrary JSON (tool input, raw hook payloads,
   content blocks) are typed `dict[str, Any]` / `list[dict[str, Any]]`: the store
   checks that they serialize to JSON before anything is written.
2. Identifiers (run, agent, task ids) are plain strings here; their shape is
   checked where they enter (the runtime and the API), not in the log.
3. `allow_inf_nan=False`: JSON has no NaN or Infinity, and pydantic would
   write them as `null`, which the same field then refuses to load. A NaN
   cost or duration is refused when the event is built instead.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EVENT_TYPES",
    "AgentCommanded",
    "AgentCompleted",
    "AgentCreated",
    "AgentDeleted",
    "AgentFailed",
    "AgentWaiting",
    "AgentWoke",
    "ApprovalDecided",
    "ApprovalRequested",
    "BoardColumn",
    "ChatMessagePosted",
    "ContextCompacted",
    "EventData",
    "EventModel",
    "ExternalHookReceived",
    "ExternalProcess",
    "HookInvoked",
    "ModelResponded",
    "ReplayDiverged",
    "RunCompleted",
    "RunFailed",
    "RunStarted",
    "TaskCreated",
    "TaskMoved",
    "TelemetryReceived",
    "ToolCallCompleted",
    "ToolCallInterrupted",
    "ToolCallRequested",
    "UnknownEvent",
    "Usage",
]

BoardColumn = Literal["PLAN", "BUILD", "REVIEW", "SHIP", "DONE", "FAILED"]


class EventModel(BaseModel):
    """Base of every event's data: frozen, no unknown fields, finite floats (note 3)."""

    # cache_strings="all": a log's short values (agent and tool ids, tool and
    # model names, decisions) repeat from event to event; one object each
    # spares their allocation, and the folds' dict look-ups and `intern` of
    # them end at identity. A rebuild of the five read models executes 1.7%
    # fewer instructions than with "keys" (BENCHMARKS.md, sixteenth pass);
    # values longer than 64 characters are never cached.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, cache_strings="all")
    SCHEMA_VERSION: ClassVar[int] = 1


class Usage(BaseModel):
    """Token usage of one model response, in the Messages API's buckets."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    # The 5-minute / 1-hour split of cache writes, when the API reports it.
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0

    @property
    def context_tokens(self) -> int:
        """Tokens the request put in the context window (all input buckets)."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


# -- runs -------------------------------------------------------------------


class RunStarted(EventModel):
    """A run began: a task given to a pattern or to the orchestrator."""

    type: Literal["RunStarted"] = "RunStarted"
    run_id: str
    task: str
    pattern: str | None = None
    workspace: str | None = None
    model: str | None = None
    simulated: bool = False
    # Set on a re-execution: the run being replayed.
    replay_of: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class RunCompleted(EventModel):
    """A run ended well."""

    type: Literal["RunCompleted"] = "RunCompleted"
    run_id: str
    summary: str = ""
    duration_ms: float = 0.0


class RunFailed(EventModel):
    """A run ended badly; `error` says why."""

    type: Literal["RunFailed"] = "RunFailed"
    run_id: str
    error: str
    duration_ms: float = 0.0


# -- agents -----------------------------------------------------------------


class AgentCreated(EventModel):
    """An agent came to be: who it is, what it may do and where.

    `engine` is what runs it: "fleet" (fleet's own loop) or "claude-code" (a
    Claude Code session, whose id fleet chose and keeps in `session_id`).
    """

    SCHEMA_VERSION: ClassVar[int] = 2  # v1 had no engine and session_id

    type: Literal["AgentCreated"] = "AgentCreated"
    agent_id: str
    name: str
    role: str
    model: str
    parent_id: str | None = None
    workspace: str = ""
    tools: list[str] = Field(default_factory=list)
    task: str | None = None
    system_prompt: str = ""
    context_limit: int = 200_000
    max_turns: int | None = None
    external: bool = False
    engine: Literal["fleet", "claude-code"] = "fleet"
    session_id: str | None = None


class AgentCommanded(EventModel):
    """An agent was given a prompt (its first task or a later command)."""

    type: Literal["AgentCommanded"] = "AgentCommanded"
    agent_id: str
    prompt: str
    by: str = "user"


class ModelResponded(EventModel):
    """The model answered one request of an agent's loop."""

    type: Literal["ModelResponded"] = "ModelResponded"
    agent_id: str
    message_id: str = ""
    model: str
    stop_reason: str | None = None
    content: list[dict[str, Any]] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    duration_ms: float = 0.0
    turn: int = 0
    # The model's context window, when the sender knows it and the agent's card may not
    # (an ingested Claude Code session learns its model from its transcript).
    context_limit: int | None = None


class ToolCallRequested(EventModel):
    """The model asked for a tool call (before hooks and execution)."""

    type: Literal["ToolCallRequested"] = "ToolCallRequested"
    agent_id: str
    tool_use_id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    # For a "write" tool: the sha256 of the file it writes before and after the call
    # ("absent": no file), so a call cut short by a crash is redone or skipped by
    # what the file holds, never blindly. None: not a write, or the result is unknown.
    before_sha256: str | None = None
    after_sha256: str | None = None


class ToolCallInterrupted(EventModel):
    """A tool call was requested, but its process stopped before it completed.

    On resume: `resolution` "ran_again" (a read, or a write whose file is as the
    call expected), "already_applied" (the file holds what the call writes), or
    "not_run" (a command, or a file that changed otherwise: the model is told).
    """

    type: Literal["ToolCallInterrupted"] = "ToolCallInterrupted"
    agent_id: str
    tool_use_id: str
    name: str
    resolution: Literal["ran_again", "already_applied", "not_run"]
    reason: str = ""


class ToolCallCompleted(EventModel):
    """A tool call ended: its result (summarised), error flag and the files it touched."""

    SCHEMA_VERSION: ClassVar[int] = 2  # v1 said `output` and `error`: see _upcasting.py

    type: Literal["ToolCallCompleted"] = "ToolCallCompleted"
    agent_id: str
    tool_use_id: str
    name: str
    result: str = ""
    is_error: bool = False
    blocked: bool = False
    duration_ms: float = 0.0
    files_read: list[str] = Field(default_factory=list)
    files_written: list[str] = Field(default_factory=list)


class HookInvoked(EventModel):
    """One hook ran at one hook point: what it decided and why.

    `system_message` is what the hook asked to show the user; `detached` marks a
    hook that ran in the background (`async`): its decision was not applied.
    """

    SCHEMA_VERSION: ClassVar[int] = 2  # v1 had no system_message and detached

    type: Literal["HookInvoked"] = "HookInvoked"
    point: str
    kind: Literal["python", "command", "http"]
    hook: str = ""
    agent_id: str | None = None
    tool_use_id: str | None = None
    decision: Literal["none", "allow", "deny", "ask", "block", "error", "timeout"] = "none"
    reason: str | None = None
    duration_ms: float = 0.0
    updated_input: dict[str, Any] | None = None
    additional_context: str | None = None
    system_message: str | None = None
    detached: bool = False


class ApprovalRequested(EventModel):
    """A tool call is on hold until a person approves or denies it (a hook answered "ask").

    Appended to the agent's stream; the answer is `ApprovalDecided` in the
    stream `approval-<approval_id>`. No answer within `timeout_s` is a denial.
    """

    type: Literal["ApprovalRequested"] = "ApprovalRequested"
    approval_id: str
    agent_id: str
    tool_use_id: str
    tool_name: str
    tool_input: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None
    timeout_s: float


class ApprovalDecided(EventModel):
    """Someone (`by`) answered an approval: "allow" runs the call, "deny" refuses it.

    `by` is "timeout" when nobody answered in time. The first answer is the
    only one: it is the stream `approval-<approval_id>`'s first event.
    """

    type: Literal["ApprovalDecided"] = "ApprovalDecided"
    approval_id: str
    agent_id: str
    tool_use_id: str
    decision: Literal["allow", "deny"]
    reason: str | None = None
    by: str


class AgentWaiting(EventModel):
    """An agent went to sleep until the agents in `on` change state."""

    type: Literal["AgentWaiting"] = "AgentWaiting"
    agent_id: str
    on: list[str]
    timeout_s: float | None = None


class AgentWoke(EventModel):
    """A sleeping agent woke: because some awaited agents changed, or a timeout."""

    type: Literal["AgentWoke"] = "AgentWoke"
    agent_id: str
    on: list[str]
    reason: Literal["changed", "timeout", "cancelled"] = "changed"
    changed: list[str] = Field(default_factory=list)
    waited_ms: float = 0.0


class ContextCompacted(EventModel):
    """An agent's conversation was summarised to free its context window."""

    type: Literal["ContextCompacted"] = "ContextCompacted"
    agent_id: str
    trigger: Literal["auto", "manual"] = "auto"
    tokens_before: int
    tokens_after: int
    summary: str


class AgentCompleted(EventModel):
    """An agent finished its current task."""

    type: Literal["AgentCompleted"] = "AgentCompleted"
    agent_id: str
    summary: str = ""
    artifacts: list[str] = Field(default_factory=list)
    stop_reason: str = "end_turn"


class AgentFailed(EventModel):
    """An agent stopped on an error, or on a budget (`limit` names which)."""

    type: Literal["AgentFailed"] = "AgentFailed"
    agent_id: str
    error: str
    limit: str | None = None


class AgentDeleted(EventModel):
    """An agent was deleted; its events stay in the log."""

    type: Literal["AgentDeleted"] = "AgentDeleted"
    agent_id: str
    by: str = "user"
    was_working: bool = False


# -- conversations ------------------------------------------------------------


class ChatMessagePosted(EventModel):
    """A message of a conversation with the orchestrator, in the stream `chat-<conversation_id>`.

    `role` is "user" for what a person wrote (prose or a slash command) and
    "orchestrator" for an answer. `author` names who wrote it (a person's name,
    "api", the orchestrator agent's id, or "fleet" for a slash command's
    answer). An answer's `reply_to` is the position of the message it answers;
    `agent_id` is the orchestrator agent that holds the conversation's context.
    """

    type: Literal["ChatMessagePosted"] = "ChatMessagePosted"
    conversation_id: str
    role: Literal["user", "orchestrator"]
    text: str
    author: str = "user"
    reply_to: int | None = None
    agent_id: str | None = None


# -- task board -------------------------------------------------------------


class TaskCreated(EventModel):
    """A task was put on the board."""

    type: Literal["TaskCreated"] = "TaskCreated"
    task_id: str
    title: str
    column: BoardColumn = "PLAN"
    assignee: str | None = None


class TaskMoved(EventModel):
    """A task moved to another board column (or got a new assignee or artifacts)."""

    type: Literal["TaskMoved"] = "TaskMoved"
    task_id: str
    column: BoardColumn
    assignee: str | None = None
    artifacts: list[str] = Field(default_factory=list)
    reason: str | None = None


# -- outside world ----------------------------------------------------------


class ExternalProcess(BaseModel):
    """The process of an external session, as its hook forwarder on the same host saw it.

    `start` is the process's start time in clock ticks after boot (`/proc/<pid>/stat`),
    which tells a reused pid from the same process; `boot_id`, `machine_id` and
    `pid_ns` say which host, boot and pid namespace the pid belongs to.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pid: int = Field(gt=0)
    start: int = Field(ge=0)
    boot_id: str = Field(max_length=64)
    machine_id: str = Field(max_length=64)
    pid_ns: str = Field(max_length=64)


class ExternalHookReceived(EventModel):
    """A hook payload posted by an external agent (e.g. a Claude Code session), kept raw.

    `process` is the session's process when a poster on the server's own host
    said which (`fleet hook-forward`), else None.
    """

    SCHEMA_VERSION: ClassVar[int] = 2  # v1 had no process

    type: Literal["ExternalHookReceived"] = "ExternalHookReceived"
    source_app: str
    session_id: str
    hook_event_name: str
    payload: dict[str, Any]
    process: ExternalProcess | None = None


class TelemetryReceived(EventModel):
    """One record of an external agent's own OpenTelemetry (a Claude Code session's), kept raw.

    `signal` says which OTLP signal it came in: a log record (`name` is its
    event name, e.g. `claude_code.api_request`), a metric data point (`value`
    holds the point's value) or a span. `attributes` are the record's own,
    flattened to JSON; `detail` keeps the rest that matters (metric unit and
    temporality, span ids, times, status).
    """

    type: Literal["TelemetryReceived"] = "TelemetryReceived"
    source_app: str
    session_id: str
    signal: Literal["log", "metric", "span"]
    name: str
    time_unix_nano: int = 0
    attributes: dict[str, Any] = Field(default_factory=dict)
    value: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class ReplayDiverged(EventModel):
    """A re-executed run did something other than its recording at one step."""

    type: Literal["ReplayDiverged"] = "ReplayDiverged"
    run_id: str
    replay_of: str
    agent_id: str
    step: int
    kind: Literal["tool_result", "tool_call", "hook_decision", "missing_response"]
    expected: str = ""
    actual: str = ""


class UnknownEvent(EventModel):
    """Stand-in for a stored event whose type this code does not know (lenient reads only).

    `raw` is the stored data as it was; it cannot be appended again.
    """

    type: str
    raw: dict[str, Any] = Field(default_factory=dict)


EventData = Annotated[
    RunStarted
    | RunCompleted
    | RunFailed
    | AgentCreated
    | AgentCommanded
    | ModelResponded
    | ToolCallRequested
    | ToolCallInterrupted
    | ToolCallCompleted
    | HookInvoked
    | ApprovalRequested
    | ApprovalDecided
    | AgentWaiting
    | AgentWoke
    | ContextCompacted
    | AgentCompleted
    | AgentFailed
    | AgentDeleted
    | ChatMessagePosted
    | TaskCreated
    | TaskMoved
    | ExternalHookReceived
    | TelemetryReceived
    | ReplayDiverged,
    Field(discriminator="type"),
]

EVENT_TYPES: dict[str, type[EventModel]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        RunStarted,
        RunCompleted,
        RunFailed,
        AgentCreated,
        AgentCommanded,
        ModelResponded,
        ToolCallRequested,
        ToolCallInterrupted,
        ToolCallCompleted,
        HookInvoked,
        ApprovalRequested,
        ApprovalDecided,
        AgentWaiting,
        AgentWoke,
        ContextCompacted,
        AgentCompleted,
        AgentFailed,
        AgentDeleted,
        ChatMessagePosted,
        TaskCreated,
        TaskMoved,
        ExternalHookReceived,
        TelemetryReceived,
        ReplayDiverged,
    )
}
