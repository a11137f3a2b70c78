"""The log as OpenTelemetry spans, after the GenAI semantic conventions: a pure fold of events.

One trace per run; its id is derived from the run id, and every span's id
from the run id and the position of the event that opened it, so the same log
always gives the same trace (twice in a row, live or after the fact).

- `invoke_workflow {pattern}` (INTERNAL): RunStarted to RunCompleted or
  RunFailed; the root.
- `invoke_agent {name}` (INTERNAL): AgentCreated (or AgentCommanded of an idle
  agent) to AgentCompleted, AgentFailed or AgentDeleted; its parent is the
  span of the agent that created it (`parent_id`), else the workflow.
- `chat {model}` (CLIENT): one ModelResponded, its duration before it; under
  the agent's span.
- `execute_tool {name}` (INTERNAL): ToolCallRequested to ToolCallCompleted;
  under the agent's span.
- `wait_for_agents` (INTERNAL): AgentWaiting to AgentWoke; under the agent's
  `wait_for_agents` tool span if one is open, else under its span.
- `hook {point}` (INTERNAL): one HookInvoked, its duration before it; under
  the tool call's span, else the agent's.
- `approval {tool}` (INTERNAL): ApprovalRequested to ApprovalDecided, the time
  a call waited for a person; under the tool call's span, else the agent's.

Commands, compactions and deletions are span events of the agent's span;
task board moves and replay divergences are span events of the workflow.
Events outside a run (ingested Claude Code sessions, agents created without
a run) belong to no trace and are skipped.

Usage follows the conventions: `gen_ai.usage.input_tokens` counts every input
token, cached ones included (Anthropic's `input_tokens` plus both cache
buckets), `gen_ai.usage.cache_read.input_tokens` and
`gen_ai.usage.cache_creation.input_tokens` the cached ones,
`gen_ai.usage.output_tokens` the output; `fleet.cost_usd` is the cost (the
conventions have no cost attribute). An agent's span holds the sum of its
chat spans.

Content (prompts, system prompts, model output, tool arguments and results)
is recorded only with `content=True`, each value cut to `max_content_chars`.

Notes (do not fix without reading this):
1. The state (open spans, what is known of each run and agent) is plain JSON
   data: the live exporter saves it with its position, so that after a
   restart it closes spans opened before the restart without reading the log
   again. Bump `VERSION` when its shape or the mapping changes.
2. A span still open when a batch export ends (a run still going) is closed
   at the time of the last event seen, with `fleet.unfinished = true`; the
   live exporter never does this, it waits for the closing event.
3. `map_events` (`_batch.py`) is the batch fold: it pauses the garbage
   collector while it folds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
    ContextCompacted,
    HookInvoked,
    ModelResponded,
    RecordedEvent,
    ReplayDiverged,
    RunCompleted,
    RunFailed,
    RunStarted,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
)

from ._records import Attributes, Kind, SpanRecord, span_id_of, trace_id_of

__all__ = [
    "DEFAULT_MAX_CONTENT_CHARS",
    "SpanMapper",
    "SpanRecord",
    "span_id_of",
    "trace_id_of",
]

DEFAULT_MAX_CONTENT_CHARS = 4096
PROVIDER = "anthropic"

Rec = RecordedEvent
Out = list[SpanRecord]


_USAGE_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
)


class SpanMapper:
    """Folds events, in log order, into finished spans. Its state is JSON (note 1).

    `apply(event)` returns the spans that event finished; `flush()` closes the
    spans still open (a batch export's end, note 2). Neither mutates the event.
    """

    VERSION = 2

    def __init__(
        self,
        *,
        content: bool = False,
        max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.content = content
        self.max_content_chars = max_content_chars
        self._runs: dict[str, dict[str, Any]] = {}
        self._agents: dict[str, dict[str, Any]] = {}
        self._open: dict[int, SpanRecord] = {}
        self._tools: dict[str, int] = {}
        self._waits: dict[str, int] = {}
        self._approvals: dict[str, int] = {}
        self._last_ns = 0
        self._time: tuple[Any, int] = (None, 0)
        if state is not None:
            self.load(state)

    # -- state --------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The state as JSON data (a new object)."""
        return {
            "version": self.VERSION,
            "runs": self._runs,
            "agents": self._agents,
            "open": [span.to_json() for span in self._open.values()],
            "tools": self._tools,
            "waits": self._waits,
            "approvals": self._approvals,
            "last_ns": self._last_ns,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        """Take the state from `dump()`'s data (after a JSON round trip). Raises ValueError."""
        if state.get("version") != self.VERSION:
            found = state.get("version")
            raise ValueError(f"span mapper state version {found!r} is not {self.VERSION}")
        data = json.loads(json.dumps(state))  # a private copy
        self._runs = data["runs"]
        self._agents = data["agents"]
        self._open = {d["s"]: SpanRecord.from_json(d) for d in data["open"]}
        self._tools = data["tools"]
        self._waits = data["waits"]
        self._approvals = data["approvals"]
        self._last_ns = data["last_ns"]

    @property
    def open_spans(self) -> int:
        """How many spans are open (started, not yet finished)."""
        return len(self._open)

    # -- helpers ------------------------------------------------------------------

    def _ns(self, event: RecordedEvent) -> int:
        # The events of one commit share one `recorded_at` object: convert it once.
        at = event.recorded_at
        last = self._time
        if last[0] is not at:
            last = self._time = (at, int(at.timestamp() * 1_000_000) * 1000)
        return last[1]

    def _before(self, event: RecordedEvent, duration_ms: float) -> int:
        return max(0, self._ns(event) - int(duration_ms * 1_000_000))

    def _text(self, value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        limit = self.max_content_chars
        return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"

    def _messages(self, role: str, parts: list[dict[str, Any]]) -> str:
        return self._text([{"role": role, "parts": parts}])

    def _start(
        self, run_id: str, event: RecordedEvent, name: str, kind: Kind, parent: int | None,
        attributes: Attributes, start_ns: int | None = None,
    ) -> SpanRecord:  # fmt: skip
        span = SpanRecord(
            trace_id=trace_id_of(run_id),
            span_id=span_id_of(run_id, event.position),
            parent_id=parent,
            name=name,
            kind=kind,
            start_ns=self._ns(event) if start_ns is None else start_ns,
            end_ns=0,
            attributes={**attributes, "fleet.position": event.position},
        )
        return span

    def _end(self, span_id: int | None, event: RecordedEvent) -> SpanRecord | None:
        span = self._open.pop(span_id, None) if span_id is not None else None
        if span is not None:
            span.end_ns = max(span.start_ns, self._ns(event))
        return span

    def _agent_parent(self, agent: Mapping[str, Any] | None, run_id: str) -> int | None:
        if agent is not None and agent.get("span") is not None:
            return int(agent["span"])
        run = self._runs.get(run_id)
        return None if run is None else int(run["span"])

    def _event_on(
        self, span_id: int | None, name: str, event: RecordedEvent, attrs: Attributes
    ) -> None:
        span = self._open.get(span_id) if span_id is not None else None
        if span is not None:
            span.events.append((name, self._ns(event), {**attrs, "fleet.position": event.position}))

    # -- folding ------------------------------------------------------------------

    def apply(self, event: RecordedEvent) -> list[SpanRecord]:
        """Fold one event; the spans it finished, in order."""
        run_id = event.meta.run_id
        if not run_id:
            return []
        self._last_ns = max(self._last_ns, self._ns(event))
        handler = _HANDLERS.get(type(event.data))
        if handler is None:
            return []
        out: list[SpanRecord] = []
        handler(self, run_id, event, event.data, out)
        return out

    def flush(self) -> list[SpanRecord]:
        """Close every open span at the last event's time, marked unfinished (note 2)."""
        out = []
        for span in sorted(self._open.values(), key=lambda s: s.attributes["fleet.position"]):
            span.end_ns = max(span.start_ns, self._last_ns)
            span.attributes["fleet.unfinished"] = True
            out.append(span)
        self._open.clear()
        self._tools.clear()
        self._waits.clear()
        self._approvals.clear()
        for agent in self._agents.values():
            agent["open"] = False
        return out

    def _run_started(self, run_id: str, event: Rec, d: RunStarted, out: Out) -> None:
        name = d.pattern or ("replay" if d.replay_of else "orchestrator")
        attrs: Attributes = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.agent.name": name,
            "gen_ai.conversation.id": run_id,
            "fleet.run.id": run_id,
            "fleet.run.simulated": d.simulated,
        }
        if d.model:
            attrs["gen_ai.request.model"] = d.model
        if d.replay_of:
            attrs["fleet.run.replay_of"] = d.replay_of
        if self.content:
            attrs["gen_ai.input.messages"] = self._messages(
                "user", [{"type": "text", "content": d.task}]
            )
        span = self._start(run_id, event, f"invoke_workflow {name}", "internal", None, attrs)
        self._open[span.span_id] = span
        self._runs[run_id] = {"span": span.span_id}

    def _run_ended(self, run_id: str, event: Rec, d: RunCompleted | RunFailed, out: Out) -> None:
        run = self._runs.pop(run_id, None)
        span = self._end(None if run is None else int(run["span"]), event)
        # The run's agents are done with: forget them (their late events belong to no span).
        for agent_id in [a for a, info in self._agents.items() if info["run"] == run_id]:
            info = self._agents.pop(agent_id)
            if info.get("open"):
                closed = self._end(int(info["span"]), event)
                if closed is not None:
                    out.append(closed)
        if span is None:
            return
        if isinstance(d, RunFailed):
            span.status, span.status_message = "error", d.error
            span.attributes["error.type"] = "run_failed"
        out.append(span)

    def _open_agent(self, run_id: str, event: RecordedEvent, agent: dict[str, Any]) -> SpanRecord:
        attrs: Attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent["name"],
            "gen_ai.agent.id": agent["id"],
            "gen_ai.conversation.id": run_id,
            "gen_ai.request.model": agent["model"],
            "fleet.agent.role": agent["role"],
            **dict.fromkeys(_USAGE_KEYS, 0),
            "fleet.cost_usd": 0.0,
        }
        if not str(agent["model"]).startswith("pattern:"):
            attrs["gen_ai.provider.name"] = PROVIDER
        if agent.get("parent"):
            attrs["fleet.agent.parent_id"] = agent["parent"]
        if self.content and agent.get("system"):
            attrs["gen_ai.system_instructions"] = self._text(
                [{"type": "text", "content": agent["system"]}]
            )
        parent_agent = self._agents.get(agent.get("parent") or "")
        parent = self._agent_parent(parent_agent, run_id)
        span = self._start(
            run_id, event, f"invoke_agent {agent['name']}", "internal", parent, attrs
        )
        self._open[span.span_id] = span
        agent["span"], agent["open"] = span.span_id, True
        return span

    def _agent_created(self, run_id: str, event: Rec, d: AgentCreated, out: Out) -> None:
        agent = {
            "id": d.agent_id, "name": d.name, "role": d.role, "model": d.model, "run": run_id,
            "parent": d.parent_id, "system": d.system_prompt, "span": None, "open": False,
        }  # fmt: skip
        self._agents[d.agent_id] = agent
        span = self._open_agent(run_id, event, agent)
        if self.content and d.task:
            span.attributes["gen_ai.input.messages"] = self._messages(
                "user", [{"type": "text", "content": d.task}]
            )

    def _agent_commanded(self, run_id: str, event: Rec, d: AgentCommanded, out: Out) -> None:
        agent = self._agents.get(d.agent_id)
        if agent is None:
            return
        if not agent["open"]:
            self._open_agent(run_id, event, agent)
        attrs: Attributes = {"fleet.by": d.by}
        if self.content:
            attrs["fleet.prompt"] = self._text(d.prompt)
        self._event_on(agent["span"], "fleet.agent.commanded", event, attrs)

    def _agent_ended(
        self,
        run_id: str,
        event: RecordedEvent,
        d: AgentCompleted | AgentFailed | AgentDeleted,
        out: list[SpanRecord],
    ) -> None:
        agent = self._agents.get(d.agent_id)
        if agent is None or not agent["open"]:
            return
        if isinstance(d, AgentDeleted):
            self._event_on(agent["span"], "fleet.agent.deleted", event, {"fleet.by": d.by})
        span = self._end(int(agent["span"]), event)
        agent["open"] = False
        if span is None:
            return
        if isinstance(d, AgentCompleted):
            span.attributes["gen_ai.response.finish_reasons"] = [d.stop_reason]
            span.attributes["fleet.agent.artifacts"] = list(d.artifacts)
            if self.content and d.summary:
                parts = [{"type": "text", "content": d.summary}]
                span.attributes["gen_ai.output.messages"] = self._messages("assistant", parts)
        elif isinstance(d, AgentFailed):
            span.status, span.status_message = "error", d.error
            span.attributes["error.type"] = d.limit or "agent_failed"
        else:
            span.status, span.status_message = "error", "deleted while working"
            span.attributes["error.type"] = "cancelled"
        out.append(span)

    def _model_responded(self, run_id: str, event: Rec, d: ModelResponded, out: Out) -> None:
        agent = self._agents.get(d.agent_id)
        parent = self._agent_parent(agent, run_id)
        u = d.usage
        usage = (
            u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens,
        )
        attrs: Attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": d.model,
            "gen_ai.response.model": d.model,
            "gen_ai.conversation.id": run_id,
            **dict(zip(_USAGE_KEYS, usage, strict=True)),
            "fleet.cost_usd": d.cost_usd,
            "fleet.agent.id": d.agent_id,
            "fleet.turn": d.turn,
        }
        if d.message_id:
            attrs["gen_ai.response.id"] = d.message_id
        if d.stop_reason:
            attrs["gen_ai.response.finish_reasons"] = [d.stop_reason]
        if self.content and d.content:
            attrs["gen_ai.output.messages"] = self._messages("assistant", _parts(d.content))
        span = self._start(
            run_id,
            event,
            f"chat {d.model}",
            "client",
            parent,
            attrs,
            self._before(event, d.duration_ms),
        )
        span.end_ns = self._ns(event)
        out.append(span)
        owner = self._open.get(parent) if parent is not None else None
        if owner is not None and owner.attributes.get("gen_ai.operation.name") == "invoke_agent":
            for key, value in zip(_USAGE_KEYS, usage, strict=True):
                owner.attributes[key] += value
            owner.attributes["fleet.cost_usd"] += d.cost_usd

    def _tool_requested(self, run_id: str, event: Rec, d: ToolCallRequested, out: Out) -> None:
        attrs: Attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": d.name,
            "gen_ai.tool.call.id": d.tool_use_id,
            "gen_ai.tool.type": "function",
            "gen_ai.conversation.id": run_id,
            "fleet.agent.id": d.agent_id,
        }
        if self.content:
            attrs["gen_ai.tool.call.arguments"] = self._text(d.input)
        parent = self._agent_parent(self._agents.get(d.agent_id), run_id)
        span = self._start(run_id, event, f"execute_tool {d.name}", "internal", parent, attrs)
        self._open[span.span_id] = span
        self._tools[d.tool_use_id] = span.span_id

    def _tool_completed(self, run_id: str, event: Rec, d: ToolCallCompleted, out: Out) -> None:
        span = self._end(self._tools.pop(d.tool_use_id, None), event)
        if span is None:
            return
        span.attributes["fleet.tool.files_read"] = list(d.files_read)
        span.attributes["fleet.tool.files_written"] = list(d.files_written)
        if self.content:
            span.attributes["gen_ai.tool.call.result"] = self._text(d.result)
        if d.blocked or d.is_error:
            span.status = "error"
            span.status_message = "blocked by a hook" if d.blocked else "the tool returned an error"
            span.attributes["error.type"] = "blocked" if d.blocked else "tool_error"
        out.append(span)

    def _hook_invoked(self, run_id: str, event: Rec, d: HookInvoked, out: Out) -> None:
        parent = self._tools.get(d.tool_use_id or "")
        if parent is None:
            parent = self._agent_parent(self._agents.get(d.agent_id or ""), run_id)
        attrs: Attributes = {
            "fleet.hook.point": d.point, "fleet.hook.kind": d.kind, "fleet.hook.name": d.hook,
            "fleet.hook.decision": d.decision,
        }  # fmt: skip
        if d.reason:
            attrs["fleet.hook.reason"] = d.reason[:256]
        if d.agent_id:
            attrs["fleet.agent.id"] = d.agent_id
        span = self._start(
            run_id,
            event,
            f"hook {d.point}",
            "internal",
            parent,
            attrs,
            self._before(event, d.duration_ms),
        )
        span.end_ns = self._ns(event)
        if d.decision in ("error", "timeout"):
            span.status, span.status_message = "error", d.reason or d.decision
            span.attributes["error.type"] = d.decision
        out.append(span)

    def _approval_requested(self, run_id: str, event: Rec, d: ApprovalRequested, out: Out) -> None:
        parent = self._tools.get(d.tool_use_id)
        if parent is None:
            parent = self._agent_parent(self._agents.get(d.agent_id), run_id)
        attrs: Attributes = {
            "fleet.agent.id": d.agent_id, "fleet.approval.id": d.approval_id,
            "gen_ai.tool.name": d.tool_name, "gen_ai.tool.call.id": d.tool_use_id,
            "fleet.approval.timeout_s": d.timeout_s,
        }  # fmt: skip
        if d.reason:
            attrs["fleet.approval.reason"] = d.reason[:256]
        span = self._start(run_id, event, f"approval {d.tool_name}", "internal", parent, attrs)
        self._open[span.span_id] = span
        self._approvals[d.approval_id] = span.span_id

    def _approval_decided(self, run_id: str, event: Rec, d: ApprovalDecided, out: Out) -> None:
        span = self._end(self._approvals.pop(d.approval_id, None), event)
        if span is None:
            return
        span.attributes["fleet.approval.decision"] = d.decision
        span.attributes["fleet.approval.by"] = d.by
        out.append(span)

    def _waiting(self, run_id: str, event: Rec, d: AgentWaiting, out: Out) -> None:
        agent = self._agents.get(d.agent_id)
        parent = self._wait_tool(d.agent_id) or self._agent_parent(agent, run_id)
        attrs: Attributes = {"fleet.agent.id": d.agent_id, "fleet.wait.on": list(d.on)}
        if d.timeout_s is not None:
            attrs["fleet.wait.timeout_s"] = d.timeout_s
        span = self._start(run_id, event, "wait_for_agents", "internal", parent, attrs)
        self._open[span.span_id] = span
        self._waits[d.agent_id] = span.span_id

    def _wait_tool(self, agent_id: str) -> int | None:
        for span_id in reversed(self._tools.values()):
            span = self._open.get(span_id)
            if (
                span is not None
                and span.attributes.get("fleet.agent.id") == agent_id
                and span.attributes.get("gen_ai.tool.name") == "wait_for_agents"
            ):
                return span_id
        return None

    def _woke(self, run_id: str, event: Rec, d: AgentWoke, out: Out) -> None:
        span = self._end(self._waits.pop(d.agent_id, None), event)
        if span is None:
            return
        span.attributes["fleet.wait.reason"] = d.reason
        span.attributes["fleet.wait.changed"] = list(d.changed)
        span.attributes["fleet.wait.waited_ms"] = d.waited_ms
        out.append(span)

    def _compacted(self, run_id: str, event: Rec, d: ContextCompacted, out: Out) -> None:
        agent = self._agents.get(d.agent_id)
        attrs: Attributes = {
            "fleet.compaction.trigger": d.trigger,
            "fleet.compaction.tokens_before": d.tokens_before,
            "fleet.compaction.tokens_after": d.tokens_after,
        }
        if self.content:
            attrs["fleet.compaction.summary"] = self._text(d.summary)
        self._event_on(
            None if agent is None else agent["span"], "fleet.context.compacted", event, attrs
        )

    def _task(self, run_id: str, event: Rec, d: TaskCreated | TaskMoved, out: Out) -> None:
        run = self._runs.get(run_id)
        attrs: Attributes = {"fleet.task.id": d.task_id, "fleet.task.column": d.column}
        if d.assignee:
            attrs["fleet.task.assignee"] = d.assignee
        if isinstance(d, TaskMoved) and d.reason:
            attrs["fleet.task.reason"] = d.reason[:256]
        name = "fleet.task.created" if isinstance(d, TaskCreated) else "fleet.task.moved"
        self._event_on(None if run is None else int(run["span"]), name, event, attrs)

    def _diverged(self, run_id: str, event: Rec, d: ReplayDiverged, out: Out) -> None:
        run = self._runs.get(run_id)
        attrs: Attributes = {
            "fleet.agent.id": d.agent_id,
            "fleet.replay.step": d.step,
            "fleet.replay.kind": d.kind,
        }
        self._event_on(
            None if run is None else int(run["span"]), "fleet.replay.diverged", event, attrs
        )


def _parts(content: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in content:
        if block.get("type") == "text":
            parts.append({"type": "text", "content": block.get("text", "")})
        elif block.get("type") == "tool_use":
            parts.append({"type": "tool_call", "id": block.get("id"), "name": block.get("name"),
                          "arguments": block.get("input")})  # fmt: skip
    return parts


_HANDLERS: dict[type, Any] = {
    RunStarted: SpanMapper._run_started,
    RunCompleted: SpanMapper._run_ended,
    RunFailed: SpanMapper._run_ended,
    AgentCreated: SpanMapper._agent_created,
    AgentCommanded: SpanMapper._agent_commanded,
    AgentCompleted: SpanMapper._agent_ended,
    AgentFailed: SpanMapper._agent_ended,
    AgentDeleted: SpanMapper._agent_ended,
    ModelResponded: SpanMapper._model_responded,
    ToolCallRequested: SpanMapper._tool_requested,
    ToolCallCompleted: SpanMapper._tool_completed,
    HookInvoked: SpanMapper._hook_invoked,
    ApprovalRequested: SpanMapper._approval_requested,
    ApprovalDecided: SpanMapper._approval_decided,
    AgentWaiting: SpanMapper._waiting,
    AgentWoke: SpanMapper._woke,
    ContextCompacted: SpanMapper._compacted,
    TaskCreated: SpanMapper._task,
    TaskMoved: SpanMapper._task,
    ReplayDiverged: SpanMapper._diverged,
}
