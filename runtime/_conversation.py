"""An agent's state and conversation, folded from its own events.

The running agent and a resumed one build their state the same way: every
event the agent appends is applied here, and `Agent.resume` applies the stored
stream. So what the model sees after a restart is exactly what the log says.

    AgentCommanded    -> a user text message (merged into a trailing tool-result message)
    ModelResponded    -> an assistant message; its tool_use blocks become pending calls
    ToolCallRequested -> the pending call is known to the log (its position is the cause)
    ToolCallCompleted -> a tool_result block in the user message after the assistant's
    ContextCompacted  -> the whole history becomes one user message holding the summary
    HookInvoked       -> a SessionStart or SubagentStart hook's additionalContext, and a
                         detached hook's, reach the model (note 3)
    ApprovalRequested -> the call is on hold for a person (remembered until it completes)
    AgentCompleted / AgentFailed / AgentDeleted -> the status

Notes (do not fix without reading this):
1. A command given after a turn that stopped with tool calls unanswered (a
   failure between the model's answer and the tools) first closes those calls
   with error results, because the API refuses a tool_use without its
   tool_result. This is deterministic, so a rebuild makes the same messages.
2. `max_turns` counts model calls since the last command, the compaction call
   included.
3. Where hooks' `additionalContext` reaches the model, as in Claude Code: a
   SessionStart or SubagentStart hook's at the start of the conversation,
   before the first prompt (and, after a resume or a compaction, with the
   next message); a detached (`async`) hook's on the next turn. Each is a
   text block `<system-reminder>...</system-reminder>` added to the user
   message being built, or held until the next one when the last message is
   the model's. UserPromptSubmit's goes into the prompt itself (AgentCommanded),
   PreToolUse's and PostToolUse's into the tool result (ToolCallCompleted),
   Stop's becomes the next prompt: those need nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    ApprovalRequested,
    ContextCompacted,
    EventFilter,
    EventStore,
    HookInvoked,
    ModelResponded,
    RecordedEvent,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
)

from ._compaction import COMPACTED_PREFIX

__all__ = [
    "REMINDER_CLOSE",
    "REMINDER_OPEN",
    "AgentState",
    "AgentStatus",
    "PendingCall",
    "find_unfinished_agents",
    "pending_calls",
    "stream_id_of",
    "text_of",
]

AgentStatus = Literal["new", "created", "working", "completed", "failed", "deleted"]
"""An agent's state as its own stream says; "new" is an `Agent` not created yet (no event)."""

_UNANSWERED = "not run: the agent stopped before this tool call was made"
_START_POINTS = frozenset({"SessionStart", "SubagentStart"})

REMINDER_OPEN = "<system-reminder>\n"
REMINDER_CLOSE = "\n</system-reminder>"
"""How hook context is wrapped for the model (note 3), as Claude Code wraps it."""


def stream_id_of(agent_id: str) -> str:
    """The stream that holds an agent's events."""
    return f"agent-{agent_id}"


@dataclass(slots=True)
class PendingCall:
    """A tool_use block of the last assistant message that has no result yet."""

    tool_use_id: str
    name: str
    input: dict[str, Any]
    requested_at: int | None = None  # position of its ToolCallRequested, once appended
    before_sha256: str | None = None  # what its ToolCallRequested expects (a write)
    after_sha256: str | None = None


def text_of(content: Sequence[Mapping[str, Any]]) -> str:
    """The text blocks of an assistant message, joined (its `last_text` once folded)."""
    texts = [str(b.get("text", "")) for b in content if b.get("type") == "text"]
    return "\n".join(t for t in texts if t).strip()


def pending_calls(content: Sequence[Mapping[str, Any]]) -> list[PendingCall]:
    """The calls an assistant message's tool_use blocks leave pending (none requested yet)."""
    return [
        PendingCall(str(b["id"]), str(b["name"]), dict(b.get("input") or {}))
        for b in content
        if b.get("type") == "tool_use"
    ]


@dataclass(slots=True)
class AgentState:
    """Everything the loop needs, folded from the agent's events. Mutated only by `apply`."""

    agent_id: str
    created: AgentCreated | None = None
    status: AgentStatus = "new"
    version: int = 0
    last_position: int | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    pending: list[PendingCall] = field(default_factory=list)
    turns: int = 0
    hook_continuations: int = 0
    last_stop_reason: str | None = None
    last_text: str = ""
    context_tokens: int = 0
    files_written: list[str] = field(default_factory=list)
    files_read: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    limit: str | None = None
    summary: str = ""
    artifacts: list[str] = field(default_factory=list)
    prompt: str = ""  # the last AgentCommanded's (what a Claude Code session is sent)
    # Hook context not yet in a user message (note 3).
    pending_context: list[str] = field(default_factory=list)
    # Calls on hold for a person: tool_use_id -> (the request, when it was made).
    approvals: dict[str, tuple[ApprovalRequested, datetime]] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        """Every token billed so far (input, output and both cache buckets)."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_tokens
            + self.cache_read_tokens
        )

    def usage(self) -> Usage:
        """The agent's usage so far, in the API's buckets."""
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_creation_input_tokens=self.cache_creation_tokens,
            cache_read_input_tokens=self.cache_read_tokens,
        )

    def apply_all(self, events: Iterable[RecordedEvent]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: RecordedEvent) -> None:
        """Fold one event of this agent's stream into the state."""
        self.version = event.version
        self.last_position = event.position
        data = event.data
        if isinstance(data, AgentCreated):
            self.created = data
            self.status = "created"
        elif isinstance(data, AgentCommanded):
            self._close_unanswered()
            self._user_text(data.prompt)
            self.prompt = data.prompt
            self.status = "working"
            self.error = self.limit = None
            if data.by.startswith("hook:"):
                self.hook_continuations += 1
            else:
                self.turns = 0
                self.hook_continuations = 0
                self.files_written = []
                self.files_read = []
        elif isinstance(data, ModelResponded):
            self._responded(data)
        elif isinstance(data, ToolCallRequested):
            for call in self.pending:
                if call.tool_use_id == data.tool_use_id:
                    call.requested_at = event.position
                    call.before_sha256 = data.before_sha256
                    call.after_sha256 = data.after_sha256
        elif isinstance(data, ToolCallCompleted):
            self._tool_result(data.tool_use_id, data.result, data.is_error)
            self.pending = [c for c in self.pending if c.tool_use_id != data.tool_use_id]
            self.approvals.pop(data.tool_use_id, None)
            for path in data.files_written:
                if path not in self.files_written:
                    self.files_written.append(path)
            for path in data.files_read:
                if path not in self.files_read:
                    self.files_read.append(path)
        elif isinstance(data, ContextCompacted):
            self.messages = [{"role": "user", "content": COMPACTED_PREFIX + data.summary}]
            self.pending = []
            self.context_tokens = data.tokens_after
        elif isinstance(data, HookInvoked):
            self._hook_context(data)
        elif isinstance(data, ApprovalRequested):
            self.approvals[data.tool_use_id] = (data, event.recorded_at)
        elif isinstance(data, AgentCompleted):
            self.status = "completed"
            self.summary = data.summary
            self.artifacts = list(data.artifacts)
        elif isinstance(data, AgentFailed):
            self.status = "failed"
            self.error = data.error
            self.limit = data.limit
        elif isinstance(data, AgentDeleted):
            self.status = "deleted"
        # AgentWaiting, AgentWoke and the rest do not change the conversation.

    def _responded(self, data: ModelResponded) -> None:
        self.turns += 1
        self.last_stop_reason = data.stop_reason
        usage = data.usage
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_creation_tokens += usage.cache_creation_input_tokens
        self.cache_read_tokens += usage.cache_read_input_tokens
        self.cost_usd += data.cost_usd
        self.context_tokens = usage.context_tokens + usage.output_tokens
        content = [dict(b) for b in data.content]
        self.last_text = text_of(content)
        if not content:  # the API refuses an empty assistant turn in a later request
            content = [{"type": "text", "text": "(no content)"}]
        self.messages.append({"role": "assistant", "content": content})
        self.pending = pending_calls(content)

    def _hook_context(self, data: HookInvoked) -> None:
        """Note 3: the context of a start or detached hook goes to the model."""
        if not data.additional_context or data.decision in ("error", "timeout"):
            return
        if not (data.detached or data.point in _START_POINTS):
            return
        self.pending_context.append(REMINDER_OPEN + data.additional_context + REMINDER_CLOSE)
        if self.messages and self.messages[-1]["role"] == "user":
            self._add_blocks([])  # the message being built takes it now

    def _add_blocks(self, blocks: list[dict[str, Any]], *, context_first: bool = False) -> None:
        """Add `blocks` and the pending hook context to the last user message (or a new one)."""
        context = [{"type": "text", "text": text} for text in self.pending_context]
        self.pending_context = []
        added = [*context, *blocks] if context_first else [*blocks, *context]
        if self.messages and self.messages[-1]["role"] == "user":
            last = self.messages[-1]
            content = last["content"]
            kept = [{"type": "text", "text": content}] if isinstance(content, str) else content
            last["content"] = [*kept, *added]
        else:
            self.messages.append({"role": "user", "content": added})

    def _user_text(self, text: str) -> None:
        self._add_blocks([{"type": "text", "text": text}], context_first=True)

    def _tool_result(self, tool_use_id: str, result: str, is_error: bool) -> None:
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "content": result,
        }
        if is_error:
            block["is_error"] = True
        if self.messages and self.messages[-1]["role"] == "user":
            content = self.messages[-1]["content"]
            if isinstance(content, list):
                # tool results come first in a user message, before any text
                texts = [i for i, b in enumerate(content) if b.get("type") != "tool_result"]
                content.insert(texts[0] if texts else len(content), block)
                return
        self._add_blocks([block])

    def _close_unanswered(self) -> None:
        for call in self.pending:
            self._tool_result(call.tool_use_id, _UNANSWERED, True)
        self.pending = []


async def find_unfinished_agents(store: EventStore, *, page: int = 1_000) -> list[str]:
    """Ids of agents whose log says they are working (a process stopped while they ran)."""
    where = EventFilter.of(
        types=["AgentCreated", "AgentCommanded", "AgentCompleted", "AgentFailed", "AgentDeleted"]
    )
    status: dict[str, str] = {}
    after = 0
    while True:
        batch = await store.read_all(after=after, where=where, limit=page, lenient=True)
        for event in batch:
            data = event.data
            agent_id = getattr(data, "agent_id", None)
            if not isinstance(agent_id, str) or (data.type == "AgentCreated" and data.external):  # type: ignore[union-attr]
                continue
            status[agent_id] = {
                "AgentCreated": "created",
                "AgentCommanded": "working",
                "AgentCompleted": "completed",
                "AgentFailed": "failed",
                "AgentDeleted": "deleted",
            }.get(data.type, status.get(agent_id, "created"))
        if len(batch) < page:
            break
        after = batch[-1].position
    return [agent_id for agent_id, s in status.items() if s == "working"]
