"""Property tests over generated logs: live, rebuilt, time-travelled and restarted states agree."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pj_helpers import dumped

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    AgentWaiting,
    AgentWoke,
    ContextCompacted,
    EventModel,
    ExternalHookReceived,
    HookInvoked,
    Meta,
    ModelResponded,
    NewEvent,
    ReplayDiverged,
    RunCompleted,
    RunFailed,
    RunStarted,
    SQLiteEventStore,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
    UnknownEvent,
    Usage,
)
from projections import COLUMNS, DEFAULT_PROJECTIONS, ProjectionRunner

AGENTS = 6
FILES = ["plan.md", "a.py", "/abs/b.py", "notes/c.md", "./d.md"]
HOOKS = [
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "Notification",
    "Stop",
    "SessionEnd",
    "PreCompact",
]

agent = st.integers(0, AGENTS - 1)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("create"), agent, st.integers(-1, AGENTS - 1), st.integers(0, 2)),
        st.tuples(st.just("command"), agent, agent),
        st.tuples(
            st.just("respond"),
            agent,
            st.integers(0, 9000),
            st.integers(0, 3000),
            st.integers(0, 4000),
        ),
        st.tuples(st.just("tool"), agent, st.integers(0, 4), st.booleans(), st.booleans()),
        st.tuples(
            st.just("hook"),
            agent,
            st.sampled_from(["allow", "deny", "block", "none"]),
            st.sampled_from([None, "", "said"]),  # what the hook asked to show, if anything
        ),
        st.tuples(st.just("wait"), agent, st.lists(agent, min_size=1, max_size=3)),
        st.tuples(st.just("wake"), agent, st.integers(0, 5000), st.lists(agent, max_size=2)),
        st.tuples(st.just("compact"), agent, st.integers(0, 500)),
        st.tuples(st.just("complete"), agent, st.integers(0, 4)),
        st.tuples(st.just("fail"), agent),
        st.tuples(st.just("delete"), agent),
        st.tuples(st.just("run"), st.integers(0, 2), st.sampled_from(["start", "done", "fail"])),
        st.tuples(st.just("task"), st.integers(0, 2), st.sampled_from(COLUMNS)),
        st.tuples(
            st.just("external"),
            st.integers(0, 1),
            st.sampled_from(HOOKS),
            st.sampled_from(["Read", "Edit", "Bash"]),
            st.integers(0, 4),
        ),
        st.tuples(st.just("replay"), agent),
    ),
    min_size=1,
    max_size=50,
)


def build(ops: Sequence[tuple[Any, ...]]) -> list[tuple[str, NewEvent]]:
    """Valid events (with the occasional reference to an agent not created yet) from steps."""
    out: list[tuple[str, NewEvent]] = []
    runs: dict[str, str] = {}  # agent -> run

    def add(
        stream: str, data: EventModel, agent_id: str | None = None, run: str | None = None
    ) -> None:
        run = run or (runs.get(agent_id) if agent_id else None)
        out.append((stream, NewEvent(data, Meta(run_id=run, agent_id=agent_id))))  # type: ignore[arg-type]

    for n, (op, *args) in enumerate(ops):
        if op == "create":
            a, parent, run = f"a{args[0]}", args[1], f"r{args[2]}"
            runs.setdefault(a, run)
            add(
                f"agent-{a}",
                AgentCreated(
                    agent_id=a,
                    name=a,
                    role="scout",
                    model="m",
                    parent_id=None if parent < 0 else f"a{parent}",
                    workspace="/ws",
                    context_limit=10_000,
                ),
                a,
            )
            continue
        if op in ("run", "task", "external"):
            if op == "run":
                run, what = f"r{args[0]}", args[1]
                data: EventModel = (
                    RunStarted(run_id=run, task="t", pattern="p")
                    if what == "start"
                    else RunCompleted(run_id=run, duration_ms=n)
                    if what == "done"
                    else RunFailed(run_id=run, error="e")
                )
                add(f"run-{run}", data, run=run)
            elif op == "task":
                task, column = f"t{args[0]}", args[1]
                if n % 3 == 0:
                    add(
                        f"task-{task}",
                        TaskCreated(task_id=task, title="x", column=column),
                        run="r0",
                    )
                else:
                    add(
                        f"task-{task}",
                        TaskMoved(
                            task_id=task, column=column, assignee="a1", artifacts=[FILES[n % 5]]
                        ),
                        run="r0",
                    )
            else:
                session, hook, tool, file = f"s{args[0]}", args[1], args[2], FILES[args[3]]
                payload = {
                    "cwd": "/ws",
                    "tool_name": tool,
                    "tool_input": {"file_path": file},
                    "tool_use_id": f"u{n}",
                    "prompt": "p",
                    "model": "opus",
                }
                add(
                    f"ext-{session}",
                    ExternalHookReceived(
                        source_app="cc", session_id=session, hook_event_name=hook, payload=payload
                    ),
                )
            continue
        a = f"a{args[0]}"
        if op == "command":
            data = AgentCommanded(agent_id=a, prompt=f"do {n}", by=f"a{args[1]}")
        elif op == "respond":
            usage = Usage(
                input_tokens=args[1], output_tokens=args[2], cache_read_input_tokens=args[3]
            )
            data = ModelResponded(agent_id=a, model="m", usage=usage, cost_usd=args[1] * 1e-6)
        elif op == "tool":
            file, write, error = FILES[args[1]], args[2], args[3]
            add(f"agent-{a}", ToolCallRequested(agent_id=a, tool_use_id=f"u{n}", name="t"), a)
            data = ToolCallCompleted(
                agent_id=a,
                tool_use_id=f"u{n}",
                name="write" if write else "read",
                is_error=error,
                files_read=[] if write else [file],
                files_written=[file] if write else [],
            )
        elif op == "hook":
            data = HookInvoked(
                point="PreToolUse",
                kind="python",
                agent_id=a,
                tool_use_id=f"u{n - 1}",
                decision=args[1],
                system_message=args[2],
            )
        elif op == "wait":
            data = AgentWaiting(agent_id=a, on=[f"a{i}" for i in args[1]])
        elif op == "wake":
            data = AgentWoke(
                agent_id=a, on=[], changed=[f"a{i}" for i in args[2]], waited_ms=float(args[1])
            )
        elif op == "compact":
            data = ContextCompacted(
                agent_id=a, tokens_before=1000, tokens_after=args[1], summary="s"
            )
        elif op == "complete":
            data = AgentCompleted(agent_id=a, artifacts=[FILES[args[1]]])
        elif op == "fail":
            data = AgentFailed(agent_id=a, error="boom")
        elif op == "delete":
            data = AgentDeleted(agent_id=a)
        else:
            data = ReplayDiverged(run_id="r0", replay_of="r9", agent_id=a, step=n, kind="tool_call")
        add(f"agent-{a}", data, a)
    return out


async def append(
    store: SQLiteEventStore, events: Sequence[tuple[str, NewEvent]], chunks: int
) -> int:
    """Append in `chunks` groups of concurrent appends (one per event); returns the head."""
    size = max(1, -(-len(events) // max(1, chunks)))
    for i in range(0, len(events), size):
        await asyncio.gather(*(store.append(s, [e]) for s, e in events[i : i + size]))
    return await store.head()


async def reference(store: SQLiteEventStore, until: int) -> dict[str, str]:
    """Every read model folded in memory over the log up to `until`."""
    events = [
        e
        for e in await store.read_all(until=until, lenient=True)
        if not isinstance(e.data, UnknownEvent)
    ]
    out = {}
    for projection in DEFAULT_PROJECTIONS:
        state = projection.initial()
        for event in events:
            state = projection.apply(state, event)
        out[projection.name] = dumped(projection, state)
    return out


def live(runner: ProjectionRunner) -> dict[str, str]:
    return {name: dumped(runner.projection(name), runner.state(name)) for name in runner.names}


@settings(max_examples=50, deadline=None)
@given(ops=steps, split=st.floats(0, 1), chunks=st.integers(1, 4), at=st.floats(0, 1))
def test_live_rebuilt_and_time_travelled_states_agree(
    ops: list[tuple[Any, ...]], split: float, chunks: int, at: float
) -> None:
    """Incremental state == rebuild from zero == state_at(head); state_at(p) == fold of p events."""
    events = build(ops)

    async def scenario(path: Path) -> None:
        async with SQLiteEventStore(path) as store:
            await append(store, events[: int(split * len(events))], 1)
            async with ProjectionRunner(store, snapshot_every=4) as runner:
                head = await append(store, events[int(split * len(events)) :], chunks)
                await runner.wait_for(head)
                incremental = live(runner)
                at_head = {
                    name: dumped(runner.projection(name), await runner.state_at(name, head))
                    for name in runner.names
                }
                await runner.rebuild()
                assert incremental == at_head == live(runner) == await reference(store, head)
                position = round(at * head)
                past = {
                    name: dumped(runner.projection(name), await runner.state_at(name, position))
                    for name in runner.names
                }
                assert past == await reference(store, position)
                for name in runner.names:  # every view renders from any state
                    await runner.view_at(name, position)
                    runner.view(name)

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder) / "fleet.db"))


@settings(max_examples=40, deadline=None)
@given(ops=steps, kill=st.floats(0, 1), every=st.integers(1, 8), chunks=st.integers(1, 6))
def test_a_runner_killed_between_any_two_events_restarts_to_the_same_state(
    ops: list[tuple[Any, ...]], kill: float, every: int, chunks: int
) -> None:
    """Kill (no last checkpoint) after any event, restart: every event is applied exactly once."""
    events = build(ops)
    cut = int(kill * len(events))

    async def scenario(path: Path) -> None:
        async with SQLiteEventStore(path) as store:
            runner = await ProjectionRunner(
                store, checkpoint_every=every, checkpoint_interval=3600
            ).start()
            killed_at = await append(store, events[:cut], chunks)
            await runner.wait_for(killed_at)
            await runner.aclose(checkpoint=False)
            head = await append(store, events[cut:], 1)
            async with ProjectionRunner(store) as restarted:
                await restarted.wait_for(head)
                assert live(restarted) == await reference(store, head)

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder) / "fleet.db"))
