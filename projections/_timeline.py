"""A run's timeline: what its agents did, step by step, in the order the log holds it.

    timeline = await load_timeline(store, "run-1a2b")
    for entry in timeline.entries:
        print(entry.position, entry.agent, entry.kind, entry.text)

Each entry is one event of the run's streams, told in a line: agents created,
commanded, completed, failed, deleted; each model response (a step, with the
tool calls it asked for); each tool call's outcome; each hook decision (and
what a hook asked to show the user, its `systemMessage`); each tool call put
on hold for a person's approval and the answer, with who gave it; the
orchestrator's waits and wake-ups; task board moves; and, for a
re-execution, its divergences from the recording.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
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
    ChatMessagePosted,
    ContextCompacted,
    EventStore,
    ExternalHookReceived,
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
    read_run,
)

__all__ = ["Timeline", "TimelineEntry", "load_timeline"]

_LINE = 160  # characters of free text (prompts, results, summaries) in one entry


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of the run, told in a line."""

    position: int
    at: datetime
    agent_id: str | None
    agent: str  # the agent's name ("" for run and task events)
    # run | agent | step | tool | hook | approval | wait | task | compaction | divergence
    kind: str
    type: str  # the event type
    step: int | None  # the agent's model response it belongs to
    text: str

    def to_json(self, started: datetime | None = None) -> dict[str, Any]:
        """Plain JSON data; `offset_ms` is the time since `started` when given."""
        body: dict[str, Any] = {
            "position": self.position,
            "at": self.at.isoformat(),
            "agent_id": self.agent_id,
            "agent": self.agent,
            "kind": self.kind,
            "type": self.type,
            "step": self.step,
            "text": self.text,
        }
        if started is not None:
            body["offset_ms"] = round((self.at - started).total_seconds() * 1000, 3)
        return body


@dataclass(frozen=True, slots=True)
class Timeline:
    """A run and its entries."""

    run_id: str
    task: str
    pattern: str | None
    model: str | None
    workspace: str | None
    simulated: bool
    replay_of: str | None
    status: str  # running | completed | failed
    started_at: datetime
    duration_ms: float | None
    summary: str
    error: str | None
    agents: list[dict[str, Any]] = field(default_factory=list)
    entries: list[TimelineEntry] = field(default_factory=list)

    @property
    def first_position(self) -> int:
        return self.entries[0].position if self.entries else 0

    @property
    def last_position(self) -> int:
        return self.entries[-1].position if self.entries else 0

    @property
    def divergences(self) -> int:
        """How many divergences a re-execution recorded (0 for a recorded run)."""
        return sum(1 for e in self.entries if e.kind == "divergence")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (the CLI's `--json` and `GET /v1/runs/{id}/timeline`)."""
        return {
            "run_id": self.run_id,
            "task": self.task,
            "pattern": self.pattern,
            "model": self.model,
            "workspace": self.workspace,
            "simulated": self.simulated,
            "replay_of": self.replay_of,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "duration_ms": self.duration_ms,
            "summary": self.summary,
            "error": self.error,
            "first_position": self.first_position,
            "last_position": self.last_position,
            "divergences": self.divergences,
            "agents": self.agents,
            "entries": [e.to_json(self.started_at) for e in self.entries],
        }


def _short(text: str, limit: int = _LINE) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _input(data: dict[str, Any]) -> str:
    for key in ("file_path", "path", "pattern", "command", "name", "agent_id", "agent_ids"):
        if key in data:
            value = data[key]
            return _short(value if isinstance(value, str) else json.dumps(value), 80)
    return _short(json.dumps(data, sort_keys=True), 80) if data else ""


class _Teller:
    """Turns events into entries; knows agent names and steps as it goes."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.steps: dict[str, int] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.inputs: dict[str, str] = {}  # tool_use_id -> the call's main argument

    def name(self, agent_id: str | None) -> str:
        return self.names.get(agent_id or "", agent_id or "")

    def names_of(self, ids: list[str]) -> str:
        return ", ".join(self.name(i) for i in ids)

    def tell(self, event: RecordedEvent) -> TimelineEntry | None:
        data = event.data
        agent_id = getattr(data, "agent_id", None) or event.meta.agent_id
        told = self._tell(data, agent_id)
        if told is None:
            return None
        kind, text = told
        return TimelineEntry(
            event.position,
            event.recorded_at,
            agent_id,
            self.name(agent_id) if kind not in ("run", "task") else "",
            kind,
            event.type,
            self.steps.get(agent_id or "") if agent_id else None,
            text,
        )

    def _tell(self, data: Any, agent_id: str | None) -> tuple[str, str] | None:
        """(kind, text) of one event, or None for an event the timeline does not show."""
        return self._tell_run(data) or self._tell_agent(data, agent_id) or self._tell_work(data)

    def _tell_run(self, data: Any) -> tuple[str, str] | None:
        """The run's own events, the board's, a re-execution's divergences, external hooks."""
        if isinstance(data, RunStarted):
            how = f"pattern {data.pattern}" if data.pattern else "the orchestrator"
            extra = f"; re-execution of {data.replay_of}" if data.replay_of else ""
            sim = " (offline simulator)" if data.simulated else ""
            text = f"run started with {how}, model {data.model}{sim}{extra}: {_short(data.task)}"
            return "run", text
        if isinstance(data, RunCompleted):
            seconds = data.duration_ms / 1000
            return "run", f"run completed in {seconds:.2f} s: {_short(data.summary)}"
        if isinstance(data, RunFailed):
            return "run", f"run failed after {data.duration_ms / 1000:.2f} s: {_short(data.error)}"
        if isinstance(data, TaskCreated):
            return "task", f"task on the board in {data.column}: {_short(data.title)}"
        if isinstance(data, TaskMoved):
            who = f", assigned to {self.name(data.assignee)}" if data.assignee else ""
            why = f" ({_short(data.reason, 100)})" if data.reason else ""
            return "task", f"task → {data.column}{who}{why}"
        if isinstance(data, ReplayDiverged):
            expected, actual = _short(data.expected, 70), _short(data.actual, 70)
            text = f"diverged at step {data.step} ({data.kind}): expected {expected!r}"
            return "divergence", f"{text}, got {actual!r}"
        if isinstance(data, ExternalHookReceived):
            return "hook", f"external {data.hook_event_name} from {data.source_app}"
        if isinstance(data, ChatMessagePosted):
            return "chat", f"{data.role} ({data.author}): {_short(data.text)}"
        return None

    def _tell_agent(self, data: Any, agent_id: str | None) -> tuple[str, str] | None:
        """An agent's lifecycle: created, commanded, asleep and awake, compacted, ended."""
        if isinstance(data, AgentCreated):
            self.names[data.agent_id] = data.name
            self.steps[data.agent_id] = 0
            self.agents[data.agent_id] = {
                "id": data.agent_id, "name": data.name, "role": data.role, "model": data.model,
                "parent_id": data.parent_id, "status": "created", "steps": 0, "tool_calls": 0,
            }  # fmt: skip
            by = f" by {self.name(data.parent_id)}" if data.parent_id else ""
            return "agent", f"created ({data.role}, {data.model}){by}"
        if isinstance(data, AgentCommanded):
            self._status(agent_id, "working")
            return "agent", f"commanded by {self.name(data.by)}: {_short(data.prompt, 100)}"
        if isinstance(data, AgentWaiting):
            self._status(agent_id, "waiting")
            return "wait", f"sleeps until one of {self.names_of(data.on)} changes"
        if isinstance(data, AgentWoke):
            self._status(agent_id, "working")
            changed = f" ({self.names_of(data.changed)} changed)" if data.changed else ""
            return "wait", f"woke: {data.reason}{changed} after {data.waited_ms:.0f} ms"
        if isinstance(data, ContextCompacted):
            sizes = f"{data.tokens_before} → {data.tokens_after} tokens"
            return "compaction", f"context compacted: {sizes}"
        if isinstance(data, AgentCompleted):
            self._status(agent_id, "completed")
            files = f" [{', '.join(data.artifacts)}]" if data.artifacts else ""
            return "agent", f"completed{files}: {_short(data.summary)}"
        if isinstance(data, AgentFailed):
            self._status(agent_id, "failed")
            limit = f" ({data.limit} limit)" if data.limit else ""
            return "agent", f"failed{limit}: {_short(data.error)}"
        if isinstance(data, AgentDeleted):
            self._status(agent_id, "deleted")
            return "agent", f"deleted by {self.name(data.by)}"
        return None

    def _tell_work(self, data: Any) -> tuple[str, str] | None:
        """What an agent did: model responses (steps), tool calls, hook decisions."""
        if isinstance(data, ModelResponded):
            step = self.steps[data.agent_id] = self.steps.get(data.agent_id, 0) + 1
            self._count(data.agent_id, "steps")
            calls = [b for b in data.content if b.get("type") == "tool_use"]
            said = " ".join(str(b.get("text", "")) for b in data.content if b.get("type") == "text")
            asks = f" → {', '.join(str(c.get('name')) for c in calls)}" if calls else ""
            tokens = data.usage.context_tokens + data.usage.output_tokens
            head = f"step {step} ({data.stop_reason}, {tokens} tokens){asks}"
            return "step", f"{head}: {_short(said, 100)}" if said.strip() else head
        if isinstance(data, ToolCallRequested):
            self.inputs[data.tool_use_id] = _input(data.input)
            return None  # the step names the calls; the completion tells the outcome
        if isinstance(data, ToolCallCompleted):
            self._count(data.agent_id, "tool_calls")
            outcome = "blocked" if data.blocked else "error" if data.is_error else "ok"
            first = data.result.strip().splitlines()[0] if data.result.strip() else ""
            argument = self.inputs.get(data.tool_use_id, "")
            call = f"{data.name} {argument}" if argument else data.name
            head = f"{call} → {outcome} ({data.duration_ms:.0f} ms)"
            return "tool", f"{head}: {_short(first, 100)}"
        if isinstance(data, HookInvoked):
            reason = f": {_short(data.reason, 100)}" if data.reason else ""
            how = " (async, not applied)" if data.detached else ""
            said = f" | says: {_short(data.system_message, 100)}" if data.system_message else ""
            head = f"{data.point} hook {data.hook or data.kind} → {data.decision}{how}"
            return "hook", f"{head}{reason}{said}"
        if isinstance(data, ApprovalRequested):
            self._status(data.agent_id, "waiting")
            why = f": {_short(data.reason, 100)}" if data.reason else ""
            call = f"{data.tool_name} {_input(data.tool_input)}".strip()
            return "approval", f"waits for approval {data.approval_id} of {call}{why}"
        if isinstance(data, ApprovalDecided):
            self._status(data.agent_id, "working")
            verb = "allowed" if data.decision == "allow" else "denied"
            why = f": {_short(data.reason, 100)}" if data.reason else ""
            return "approval", f"approval {data.approval_id} {verb} by {data.by}{why}"
        return None

    def _status(self, agent_id: str | None, status: str) -> None:
        agent = self.agents.get(agent_id or "")
        if agent is not None:
            agent["status"] = status

    def _count(self, agent_id: str | None, key: str) -> None:
        agent = self.agents.get(agent_id or "")
        if agent is not None:
            agent[key] += 1


async def load_timeline(store: EventStore, run_id: str) -> Timeline:
    """The timeline of run `run_id` from the log. Raises `RunNotFound`."""
    events = await read_run(store, run_id)
    run_stream = f"run-{run_id}"
    started = next(e for e in events if e.stream_id == run_stream)  # RunStarted: checked
    start = started.data
    assert isinstance(start, RunStarted)
    teller = _Teller()
    entries = [entry for event in events if (entry := teller.tell(event)) is not None]
    status, duration, summary, error = "running", None, "", None
    for event in events:
        if isinstance(event.data, RunCompleted) and event.stream_id == started.stream_id:
            status, duration, summary = "completed", event.data.duration_ms, event.data.summary
        elif isinstance(event.data, RunFailed) and event.stream_id == started.stream_id:
            status, duration, error = "failed", event.data.duration_ms, event.data.error
    return Timeline(
        run_id=run_id,
        task=start.task,
        pattern=start.pattern,
        model=start.model,
        workspace=start.workspace,
        simulated=start.simulated,
        replay_of=start.replay_of,
        status=status,
        started_at=started.recorded_at,
        duration_ms=duration,
        summary=summary,
        error=error,
        agents=list(teller.agents.values()),
        entries=entries,
    )
