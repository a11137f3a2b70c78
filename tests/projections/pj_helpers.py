"""Hand-written logs for the projection tests: a timeline with controlled times.

`Timeline` builds `RecordedEvent`s with the positions and `recorded_at` a real
store would give them (1, 2, 3, ... and times we choose), so table tests can
fold them straight into a projection; `append_all` writes the same events to a
real store (which gives them its own times) for the runner tests.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentWaiting,
    AgentWoke,
    EventModel,
    EventStore,
    HookInvoked,
    Meta,
    ModelResponded,
    NewEvent,
    RecordedEvent,
    RunCompleted,
    RunStarted,
    SQLiteEventStore,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
)
from projections import Projection

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def _stream(data: EventModel) -> str:
    for field, prefix in (("agent_id", "agent"), ("task_id", "task"), ("run_id", "run")):
        value = getattr(data, field, None)
        if isinstance(value, str):
            return f"{prefix}-{value}"
    session = getattr(data, "session_id", None)
    if isinstance(session, str):
        return f"ext-{session}"
    return "misc"


class Timeline:
    """Events at chosen times (seconds after T0), positioned 1, 2, 3, ..."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []
        self._versions: dict[str, int] = {}

    def add(
        self, at: float, data: EventModel, *, run: str | None = "r1", stream: str | None = None
    ) -> RecordedEvent:
        stream_id = stream or _stream(data)
        version = self._versions[stream_id] = self._versions.get(stream_id, 0) + 1
        event = RecordedEvent(
            position=len(self.events) + 1,
            stream_id=stream_id,
            version=version,
            data=data,  # type: ignore[arg-type]
            meta=Meta(run_id=run, agent_id=getattr(data, "agent_id", None)),
            recorded_at=T0 + timedelta(seconds=at),
        )
        self.events.append(event)
        return event

    def fold(self, projection: Projection[Any], until: int | None = None) -> Any:
        state = projection.initial()
        for event in self.events[:until]:
            state = projection.apply(state, event)
        return state

    def view(self, projection: Projection[Any], until: int | None = None) -> dict[str, Any]:
        return projection.view(self.fold(projection, until))


def at(seconds: float) -> str:
    """The ISO time a view shows for an event at `seconds` after T0."""
    return (T0 + timedelta(seconds=seconds)).isoformat()


def dumped(projection: Projection[Any], state: Any) -> str:
    """A state as canonical JSON text, for comparing states."""
    return json.dumps(projection.dump(state), sort_keys=True)


async def append_all(store: EventStore, events: Sequence[RecordedEvent]) -> int:
    """Append `events` (data and meta) in order, one append per run of a stream; returns head."""
    head = 0
    batch: list[NewEvent] = []
    stream = ""
    for event in [*events, None]:
        if event is None or (batch and event.stream_id != stream):
            recorded = await store.append(stream, batch)
            head = recorded[-1].position
            batch = []
        if event is not None:
            stream = event.stream_id
            batch.append(NewEvent(event.data, event.meta))  # type: ignore[arg-type]
    return head


def _usage(inp: int, out: int, write: int = 0, read: int = 0) -> Usage:
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_creation_input_tokens=write,
        cache_read_input_tokens=read,
    )


def _tool(tl: Timeline, t: float, agent: str, n: int, name: str, **files: list[str]) -> None:
    tl.add(t, ToolCallRequested(agent_id=agent, tool_use_id=f"{agent}-t{n}", name=name))
    tl.add(
        t + 0.2, ToolCallCompleted(agent_id=agent, tool_use_id=f"{agent}-t{n}", name=name, **files)
    )


def scout_plan_build(tl: Timeline) -> Timeline:
    """A run a user would recognise: an orchestrator, three scouts, a planner, a builder.

    Scouts s1 (haiku), s2 (sonnet), s3 (gemini-flash) finish at 3 s, 6 s and 4 s;
    the planner reads their reports and writes plan.md (done at 10 s); the
    builder reads plan.md, has one `rm -rf` blocked by a hook, writes app.py and
    finishes at 20 s; everything is deleted and the run completes at 22 s.
    """
    tl.add(0, RunStarted(run_id="r1", task="Migrate to the new SDK", pattern="scout-plan-build"))
    tl.add(
        0,
        AgentCreated(
            agent_id="orch",
            name="orchestrator",
            role="orchestrator",
            model="opus",
            workspace="/ws",
            context_limit=200_000,
        ),
    )
    tl.add(0.1, AgentCommanded(agent_id="orch", prompt="Migrate to the new SDK"))
    tl.add(
        0.5, ModelResponded(agent_id="orch", model="opus", usage=_usage(1000, 200), cost_usd=0.02)
    )
    for i, model in ((1, "haiku"), (2, "sonnet"), (3, "gemini-flash")):
        tl.add(
            1,
            AgentCreated(
                agent_id=f"s{i}",
                name=f"scout-{i}",
                role="scout",
                model=model,
                parent_id="orch",
                workspace="/ws",
                context_limit=100_000,
            ),
        )
        tl.add(1, AgentCommanded(agent_id=f"s{i}", prompt="Find SDK usages", by="orch"))
    tl.add(1.1, AgentWaiting(agent_id="orch", on=["s1", "s2", "s3"]))
    parallel: list[tuple[float, EventModel]] = []  # the scouts work at once: sorted by time
    for i, done in ((1, 3.0), (2, 6.0), (3, 4.0)):
        agent = f"s{i}"
        report = f"relevant-files-{i}.md"
        parallel += [
            (
                1.5,
                ModelResponded(
                    agent_id=agent, model="m", usage=_usage(2000, 300, 500, 1000), cost_usd=0.01
                ),
            ),
            (2.0, ToolCallRequested(agent_id=agent, tool_use_id=f"{agent}-t1", name="Grep")),
            (
                2.2,
                ToolCallCompleted(
                    agent_id=agent,
                    tool_use_id=f"{agent}-t1",
                    name="Grep",
                    files_read=["src/a.py", "src/b.py"],
                ),
            ),
            (
                done - 0.5,
                ToolCallRequested(agent_id=agent, tool_use_id=f"{agent}-t2", name="write"),
            ),
            (
                done - 0.3,
                ToolCallCompleted(
                    agent_id=agent, tool_use_id=f"{agent}-t2", name="write", files_written=[report]
                ),
            ),
            (done, AgentCompleted(agent_id=agent, summary=f"{i} files", artifacts=[report])),
        ]
    for t, data in sorted(parallel, key=lambda item: item[0]):
        tl.add(t, data)
    tl.add(6.1, AgentWoke(agent_id="orch", on=["s1", "s2", "s3"], changed=["s2"], waited_ms=5000))
    tl.add(
        6.5,
        AgentCreated(
            agent_id="planner",
            name="planner",
            role="planner",
            model="opus",
            parent_id="orch",
            workspace="/ws",
        ),
    )
    tl.add(6.5, AgentCommanded(agent_id="planner", prompt="Plan it", by="orch"))
    tl.add(6.6, AgentWaiting(agent_id="orch", on=["planner"]))
    reports = ["relevant-files-1.md", "relevant-files-2.md", "relevant-files-3.md"]
    _tool(tl, 7.0, "planner", 1, "read", files_read=reports)
    _tool(tl, 9.0, "planner", 2, "write", files_written=["plan.md"])
    tl.add(10.0, AgentCompleted(agent_id="planner", summary="plan ready", artifacts=["plan.md"]))
    tl.add(10.1, AgentWoke(agent_id="orch", on=["planner"], changed=["planner"], waited_ms=3500))
    tl.add(
        10.5,
        AgentCreated(
            agent_id="builder",
            name="builder",
            role="builder",
            model="sonnet",
            parent_id="orch",
            workspace="/ws",
        ),
    )
    tl.add(10.5, AgentCommanded(agent_id="builder", prompt="Build plan.md", by="orch"))
    tl.add(10.6, AgentWaiting(agent_id="orch", on=["builder"]))
    _tool(tl, 11.0, "builder", 1, "read", files_read=["plan.md"])
    tl.add(12.0, ToolCallRequested(agent_id="builder", tool_use_id="builder-t2", name="bash"))
    tl.add(
        12.0,
        HookInvoked(
            point="PreToolUse",
            kind="command",
            agent_id="builder",
            tool_use_id="builder-t2",
            decision="deny",
            reason="rm -rf",
        ),
    )
    tl.add(
        12.1,
        ToolCallCompleted(
            agent_id="builder", tool_use_id="builder-t2", name="bash", is_error=True, blocked=True
        ),
    )
    tl.add(
        13.0,
        ModelResponded(
            agent_id="builder",
            model="sonnet",
            usage=_usage(30_000, 4000, 2000, 10_000),
            cost_usd=0.5,
        ),
    )
    _tool(tl, 15.0, "builder", 3, "write", files_written=["src/app.py"])
    tl.add(20.0, AgentCompleted(agent_id="builder", summary="built", artifacts=["src/app.py"]))
    tl.add(20.1, AgentWoke(agent_id="orch", on=["builder"], changed=["builder"], waited_ms=9500))
    tl.add(21.0, AgentCompleted(agent_id="orch", summary="migrated"))
    for agent in ("s1", "s2", "s3", "planner", "builder"):
        tl.add(21.5, AgentDeleted(agent_id=agent, by="orch"))
    tl.add(22.0, RunCompleted(run_id="r1", summary="migrated", duration_ms=22_000))
    return tl


def review_fails_once(tl: Timeline) -> Timeline:
    """Plan-build-review-ship where the first review fails and sends the task back to BUILD."""
    tl.add(
        0,
        RunStarted(run_id="r2", task="Update HTML titles", pattern="plan-build-review-ship"),
        run="r2",
    )
    tl.add(
        0, TaskCreated(task_id="titles", title="Update HTML titles", assignee="planner"), run="r2"
    )
    tl.add(
        5,
        TaskMoved(task_id="titles", column="BUILD", assignee="builder", artifacts=["plan.md"]),
        run="r2",
    )
    tl.add(
        10,
        TaskMoved(task_id="titles", column="REVIEW", assignee="reviewer", artifacts=["index.html"]),
        run="r2",
    )
    tl.add(
        12,
        TaskMoved(
            task_id="titles", column="BUILD", assignee="builder", reason="title missing on /about"
        ),
        run="r2",
    )
    tl.add(
        15,
        TaskMoved(task_id="titles", column="REVIEW", assignee="reviewer", artifacts=["about.html"]),
        run="r2",
    )
    tl.add(16, TaskMoved(task_id="titles", column="SHIP", assignee="shipper"), run="r2")
    tl.add(17, TaskMoved(task_id="titles", column="DONE", artifacts=["commit 1a2b3c"]), run="r2")
    tl.add(17, TaskCreated(task_id="favicon", title="Add a favicon"), run="r2")
    return tl


async def read_with_raw_row(
    path: Path, stream: str, events: list[NewEvent], schema: int, data: dict[str, Any]
) -> list[RecordedEvent]:
    """A new SQLite log at `path`: `events` appended to `stream`, then `data` (of schema
    `schema`) written straight in as that stream's next row, past the store's validation, as
    a damaged or hand-edited file holds it; the whole log read back."""
    async with SQLiteEventStore(path) as store:
        await store.append(stream, events)
    position = len(events) + 1  # the stream is the log's only one: its version too
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO events (position, stream_id, version, type, schema_version, data, "
            "source, recorded_at) VALUES (?, ?, ?, ?, ?, ?, 'runtime', ?)",
            (position, stream, position, data["type"], schema, json.dumps(data),
             time.time_ns() // 1000),
        )  # fmt: skip
    async with SQLiteEventStore(path) as store:
        return await store.read_all()
