"""The runner against a real SQLite log: catch-up, live follow, checkpoints, time travel."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import sqlite3
import threading
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import zstandard
from pj_helpers import Timeline, append_all, dumped, scout_plan_build

from events import (
    AgentCreated,
    Checkpoint,
    EventStore,
    Meta,
    ModelResponded,
    NewEvent,
    RecordedEvent,
    Snapshot,
    SQLiteEventStore,
    UnknownEvent,
)
from events.memory import MemoryEventStore, MemoryLog
from projections import (
    DEFAULT_PROJECTIONS,
    AgentsProjection,
    FleetProjection,
    FoldProjection,
    InvalidPosition,
    Projection,
    ProjectionFailed,
    ProjectionRunner,
    ProjectionTimeout,
    RunnerClosed,
    RunsProjection,
    UnknownProjection,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    async with SQLiteEventStore(tmp_path / "fleet.db") as s:
        yield s


async def folded(store: EventStore, projection: Projection[Any], until: int | None = None) -> str:
    """The projection folded in memory over the stored log (the reference answer)."""
    state = projection.initial()
    for event in await store.read_all(until=until, lenient=True):
        if not isinstance(event.data, UnknownEvent):
            state = projection.apply(state, event)
    return dumped(projection, state)


def live(runner: ProjectionRunner, name: str) -> str:
    return dumped(runner.projection(name), runner.state(name))


def checkpoints(path: Path) -> dict[str, tuple[int, int]]:
    """(version, position) of each stored checkpoint, read as a user would with sqlite3."""
    with closing(sqlite3.connect(path)) as conn, conn:
        rows = conn.execute("SELECT name, version, position FROM projection_checkpoints").fetchall()
    return {name: (version, position) for name, version, position in rows}


def insert_raw_event(path: Path, event_type: str, data: dict[str, Any]) -> int:
    """Write a row of a type this fleet does not know, as a newer fleet would."""
    with closing(sqlite3.connect(path)) as conn, conn:
        (head,) = conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        conn.execute(
            "INSERT INTO events (position, stream_id, version, type, schema_version, data, "
            "source, recorded_at) VALUES (?, ?, 1, ?, 1, ?, 'runtime', ?)",
            (head + 1, f"future-{head + 1}", event_type, json.dumps(data), time.time_ns() // 1000),
        )
    return int(head) + 1


async def test_runner_catches_up_then_follows_live_appends(store: SQLiteEventStore) -> None:
    events = scout_plan_build(Timeline()).events
    await append_all(store, events[:20])

    async with ProjectionRunner(store) as runner:
        assert runner.position == 20
        head = await append_all(store, events[20:])
        await runner.wait_for(head)

        for name in runner.names:
            assert live(runner, name) == await folded(store, runner.projection(name))
        assert runner.agent("s2")["status"] == "deleted"  # type: ignore[index]
        assert runner.agent("nobody") is None


async def test_restart_resumes_after_the_checkpoint_and_applies_each_event_once(
    store: SQLiteEventStore,
) -> None:
    events = scout_plan_build(Timeline()).events
    await append_all(store, events[:30])
    async with ProjectionRunner(store) as runner:
        await runner.wait_for(30)
    assert checkpoints(store.path)["fleet"] == (FleetProjection.version, 30)

    head = await append_all(store, events[30:])
    async with ProjectionRunner(store) as runner:
        assert runner.position == head
        assert runner.view("fleet")["events"]["total"] == head
        for name in runner.names:
            assert live(runner, name) == await folded(store, runner.projection(name))


async def test_checkpoints_are_written_every_n_events_not_per_event(
    store: SQLiteEventStore,
) -> None:
    async with ProjectionRunner(store, checkpoint_every=5, checkpoint_interval=60) as runner:
        for i in range(12):
            (recorded,) = await store.append(
                f"agent-a{i}",
                [NewEvent(AgentCreated(agent_id=f"a{i}", name="a", role="r", model="m"))],
            )
        await runner.wait_for(recorded.position)
        assert checkpoints(store.path)["runs"] == (RunsProjection.version, 10)
    assert checkpoints(store.path)["runs"] == (RunsProjection.version, 12)


async def test_a_quiet_runner_still_checkpoints_after_the_interval(store: SQLiteEventStore) -> None:
    async with ProjectionRunner(store, checkpoint_interval=0.05) as runner:
        head = await append_all(store, scout_plan_build(Timeline()).events[:3])
        await runner.wait_for(head)
        async with asyncio.timeout(30):  # a loaded machine may take seconds to get there
            while checkpoints(store.path).get("runs", (0, 0))[1] != head:
                await asyncio.sleep(0.02)
        assert checkpoints(store.path)["runs"] == (RunsProjection.version, head)


class Counter(FoldProjection[dict[str, int]]):
    """Counts events; version 2 counts each event as ten (a changed fold)."""

    name = "counter"

    def __init__(self, version: int) -> None:
        super().__init__()
        self.version = version

    def initial(self) -> dict[str, int]:
        return {"n": 0}

    def apply(self, state: dict[str, int], event: RecordedEvent) -> dict[str, int]:
        state["n"] += 1 if self.version == 1 else 10
        return state

    def view(self, state: dict[str, int]) -> dict[str, Any]:
        return dict(state)


async def test_a_bumped_projection_version_rebuilds_from_zero(
    store: SQLiteEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    head = await append_all(store, scout_plan_build(Timeline()).events)
    async with ProjectionRunner(store, [Counter(1)]) as runner:
        assert runner.view("counter") == {"n": head}

    with caplog.at_level(logging.INFO):
        async with ProjectionRunner(store, [Counter(2)]) as runner:
            assert runner.view("counter") == {"n": 10 * head}
    assert "changed from version 1 to 2: rebuilding from position 0" in caplog.text
    assert checkpoints(store.path)["counter"] == (2, head)


async def test_an_unknown_event_type_in_the_log_is_logged_and_skipped(
    store: SQLiteEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    events = scout_plan_build(Timeline()).events
    await append_all(store, events[:10])
    at_start = await asyncio.to_thread(insert_raw_event, store.path, "AgentTeleported", {"to": "x"})
    await append_all(store, events[10:20])

    with caplog.at_level(logging.ERROR):
        async with ProjectionRunner(store) as runner:
            assert f"position {at_start} has unknown type 'AgentTeleported'" in caplog.text
            live_one = await asyncio.to_thread(insert_raw_event, store.path, "TimeFroze", {})
            head = await append_all(store, events[20:])
            await runner.wait_for(head)

            assert f"position {live_one} has unknown type 'TimeFroze'" in caplog.text
            assert runner.positions() == dict.fromkeys(runner.names, head)
            for name in runner.names:
                assert live(runner, name) == await folded(store, runner.projection(name))
            # The fleet counts every event it knows, and only those.
            assert runner.view("fleet")["events"]["total"] == head - 2
            fleet = runner.projection("fleet")
            past = await runner.state_at("fleet", live_one)
            assert fleet.view(past)["events"]["total"] == live_one - 2


async def test_duplicated_and_out_of_order_delivery_changes_nothing(
    store: SQLiteEventStore,
) -> None:
    async with ProjectionRunner(store) as runner:
        await append_all(store, scout_plan_build(Timeline()).events)
        recorded = await store.read_all()
        await runner.wait_for(recorded[-1].position)
        before = {name: live(runner, name) for name in runner.names}

        applied = await runner.offer(reversed(recorded))
        applied += await runner.offer(recorded[5:9] + recorded[2:4])

        assert applied == 0
        assert {name: live(runner, name) for name in runner.names} == before


async def test_offered_events_are_applied_at_once_and_not_again(store: SQLiteEventStore) -> None:
    async with ProjectionRunner(store) as runner:
        recorded = await store.append(
            "agent-a", [NewEvent(AgentCreated(agent_id="a", name="a", role="r", model="m"))]
        )
        await runner.offer(recorded)  # read-your-writes without waiting (or already applied)
        assert runner.agent("a") is not None
        await runner.wait_for(recorded[-1].position)
        assert runner.view("fleet")["agents_created"] == 1


async def test_wait_for_a_position_not_yet_written_times_out_clearly(
    store: SQLiteEventStore,
) -> None:
    head = await append_all(store, scout_plan_build(Timeline()).events[:5])
    async with ProjectionRunner(store) as runner:
        with pytest.raises(ProjectionTimeout) as caught:
            await runner.wait_for(head + 3, timeout=0.05)
    assert (caught.value.position, caught.value.reached) == (head + 3, head)
    assert isinstance(caught.value, TimeoutError)


async def test_state_at_any_position_equals_a_fold_of_that_prefix(store: SQLiteEventStore) -> None:
    head = await append_all(store, scout_plan_build(Timeline()).events)
    async with ProjectionRunner(store, snapshot_every=10) as runner:
        for name in runner.names:
            projection = runner.projection(name)
            for position in (0, 1, 9, 10, 11, 37, head - 1, head):
                state = await runner.state_at(name, position)
                assert dumped(projection, state) == await folded(store, projection, position)
        assert (await runner.view_at("agents", 0)) == {"count": 0, "agents": []}
        mid = await runner.view_at("agents", 12)
        assert mid["count"] == 4


async def test_state_at_returns_a_copy_the_live_state_never_sees(store: SQLiteEventStore) -> None:
    head = await append_all(store, scout_plan_build(Timeline()).events)
    async with ProjectionRunner(store) as runner:
        copy = await runner.state_at("agents", head)
        copy["agents"].clear()
        assert runner.view("agents")["count"] == 6


async def test_time_travel_outside_the_log_is_refused(store: SQLiteEventStore) -> None:
    head = await append_all(store, scout_plan_build(Timeline()).events[:5])
    async with ProjectionRunner(store) as runner:
        with pytest.raises(
            InvalidPosition, match=rf"position {head + 1} is outside the log \(0 to {head}\)"
        ):
            await runner.state_at("agents", head + 1)
        with pytest.raises(InvalidPosition):
            await runner.view_at("agents", -1)
        with pytest.raises(UnknownProjection, match="no projection named 'agent'"):
            await runner.state_at("agent", 1)


async def test_rebuild_gives_the_live_state_again(store: SQLiteEventStore) -> None:
    head = await append_all(store, scout_plan_build(Timeline()).events)
    async with ProjectionRunner(store) as runner:
        before = {name: live(runner, name) for name in runner.names}
        assert await runner.rebuild() == head
        assert {name: live(runner, name) for name in runner.names} == before
        assert await runner.rebuild("graph") == head


class Exploding(FoldProjection[dict[str, int]]):
    """Raises on the first AgentCompleted: a bug in a projection."""

    name = "exploding"

    def initial(self) -> dict[str, int]:
        return {"n": 0}

    def apply(self, state: dict[str, int], event: RecordedEvent) -> dict[str, int]:
        if event.type == "AgentCompleted":
            raise ZeroDivisionError("bug")
        state["n"] += 1
        return state

    def view(self, state: dict[str, int]) -> dict[str, Any]:
        return dict(state)


async def test_a_projection_that_raises_stops_alone_and_says_where(
    store: SQLiteEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    events = scout_plan_build(Timeline()).events
    first_completion = next(e.position for e in events if e.type == "AgentCompleted")
    async with ProjectionRunner(store, [*DEFAULT_PROJECTIONS, Exploding()]) as runner:
        head = await append_all(store, events)
        await runner.wait_for(head)

        with pytest.raises(ProjectionFailed) as caught:
            runner.view("exploding")
        assert (caught.value.name, caught.value.position) == ("exploding", first_completion)
        assert runner.view("fleet")["events"]["total"] == head
        assert runner.positions()["exploding"] == first_completion - 1
    assert "exploding" not in checkpoints(store.path)
    assert "projection 'exploding' failed at position" in caplog.text


async def test_a_projection_that_raises_while_catching_up_says_where(
    store: SQLiteEventStore,
) -> None:
    events = scout_plan_build(Timeline()).events
    first_completion = next(e.position for e in events if e.type == "AgentCompleted")
    head = await append_all(store, events)

    async with ProjectionRunner(store, [*DEFAULT_PROJECTIONS, Exploding()]) as runner:
        with pytest.raises(ProjectionFailed) as caught:
            runner.state("exploding")
        assert caught.value.position == first_completion
        assert isinstance(caught.value.cause, ZeroDivisionError)
        assert runner.position == head


async def test_aclose_is_idempotent_and_a_closed_runner_says_so(store: SQLiteEventStore) -> None:
    runner = await ProjectionRunner(store).start()
    await runner.aclose()
    await runner.aclose()

    with pytest.raises(RunnerClosed, match="closed"):
        runner.view("agents")
    with pytest.raises(RunnerClosed):
        await runner.state_at("agents", 0)
    with pytest.raises(RunnerClosed):
        await runner.start()


async def test_the_runner_stops_clearly_when_the_store_closes(tmp_path: Path) -> None:
    store = await SQLiteEventStore(tmp_path / "fleet.db").open()
    async with ProjectionRunner(store) as runner:
        await store.aclose()
        with pytest.raises(RunnerClosed, match="event store closed"):
            await runner.wait_for(1, timeout=30)


def test_bad_runner_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        ProjectionRunner(None, [AgentsProjection(), AgentsProjection()])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="checkpoint_every"):
        ProjectionRunner(None, checkpoint_every=0)  # type: ignore[arg-type]


async def test_a_runner_killed_between_checkpoints_resumes_exactly_once(
    store: SQLiteEventStore,
) -> None:
    events = scout_plan_build(Timeline()).events
    runner = await ProjectionRunner(store, checkpoint_every=7, checkpoint_interval=60).start()
    killed_at = await append_all(store, events[:25])
    await runner.wait_for(killed_at)
    await runner.aclose(checkpoint=False)  # what a crash leaves: the checkpoint at 21
    assert checkpoints(store.path)["fleet"] == (FleetProjection.version, 21)

    head = await append_all(store, events[25:])
    async with ProjectionRunner(store) as restarted:
        assert restarted.view("fleet")["events"]["total"] == head
        for name in restarted.names:
            assert live(restarted, name) == await folded(store, restarted.projection(name))


KILLED_CHILD = """
import asyncio, os, sys
from events import SQLiteEventStore, NewEvent, AgentCreated, ModelResponded
from projections import ProjectionRunner

async def main():
    async with SQLiteEventStore(sys.argv[1]) as store:
        runner = await ProjectionRunner(store, checkpoint_every=4, checkpoint_interval=60).start()
        created = AgentCreated(agent_id="a", name="a", role="r", model="m")
        await store.append("agent-a", [NewEvent(created)])
        for i in range(10):
            responded = ModelResponded(agent_id="a", model="m", cost_usd=0.5)
            (e,) = await store.append("agent-a", [NewEvent(responded)])
            await runner.wait_for(e.position)
        os.kill(os.getpid(), 9)

asyncio.run(main())
"""


async def test_a_process_killed_with_sigkill_loses_no_event_and_counts_none_twice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fleet.db"
    child = await asyncio.create_subprocess_exec(
        __import__("sys").executable, "-c", KILLED_CHILD, str(path)
    )
    assert await asyncio.wait_for(child.wait(), 60) == -9
    assert checkpoints(path)["fleet"] == (
        FleetProjection.version,
        8,
    )  # checkpoints at 4 and 8; 9..11 were lost

    async with SQLiteEventStore(path) as store, ProjectionRunner(store) as runner:
        assert runner.position == 11
        assert runner.view("fleet")["cost_usd"] == pytest.approx(5.0)
        assert runner.agent("a")["turns"] == 10  # type: ignore[index]


async def test_two_processes_can_share_one_log_and_its_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    async with (
        SQLiteEventStore(path) as writer,
        SQLiteEventStore(path) as reader,
        ProjectionRunner(reader) as runner,
    ):
        recorded = await writer.append(
            "agent-a",
            [
                NewEvent(AgentCreated(agent_id="a", name="a", role="r", model="m")),
                NewEvent(ModelResponded(agent_id="a", model="m", cost_usd=1.0), Meta()),
            ],
        )
        await runner.wait_for(recorded[-1].position)
        assert runner.view("fleet")["cost_usd"] == 1.0


# -- the runner on the store's protocols ------------------------------------------------------


async def test_the_runner_opens_no_connection_of_its_own(tmp_path: Path) -> None:
    """Checkpoints go through the store: its writer and reader are the only connections."""
    before = set(threading.enumerate())
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        async with ProjectionRunner(store, checkpoint_every=3) as runner:
            head = await append_all(store, scout_plan_build(Timeline()).events[:10])
            await runner.wait_for(head)
            await runner.view_at("agents", 5)
        started = [
            t for t in threading.enumerate() if t not in before and not t.name.startswith("asyncio")
        ]
    assert len(started) == 2
    assert checkpoints(tmp_path / "fleet.db")["fleet"] == (FleetProjection.version, head)


async def test_a_runner_on_the_in_memory_log_resumes_from_its_checkpoint() -> None:
    log = MemoryLog()
    events = scout_plan_build(Timeline()).events
    async with MemoryEventStore(log) as store, ProjectionRunner(store) as runner:
        await runner.wait_for(await append_all(store, events[:30]))
    assert (await _memory_checkpoint(log, "fleet")).position == 30

    async with MemoryEventStore(log) as store:
        head = await append_all(store, events[30:])
        async with ProjectionRunner(store) as runner:
            assert runner.position == head
            assert runner.view("fleet")["events"]["total"] == head
            for name in runner.names:
                assert live(runner, name) == await folded(store, runner.projection(name))


async def _memory_checkpoint(log: MemoryLog, name: str) -> Checkpoint:
    async with MemoryEventStore(log) as store:
        return (await store.checkpoints.load_checkpoints())[name]


async def test_a_runner_on_a_read_only_log_starts_from_its_checkpoints_and_writes_none(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fleet.db"
    events = scout_plan_build(Timeline()).events
    async with SQLiteEventStore(path) as store:
        async with ProjectionRunner(store) as runner:
            await runner.wait_for(await append_all(store, events[:30]))
        head = await append_all(store, events[30:])

    async with (
        SQLiteEventStore(path, readonly=True) as reader,
        ProjectionRunner(reader) as runner,
    ):
        assert runner.position == head
        for name in runner.names:
            assert live(runner, name) == await folded(reader, runner.projection(name))
    assert checkpoints(path)["fleet"] == (FleetProjection.version, 30)


class Tally:
    """Counts events; remembers how many `apply` calls it has made (across states)."""

    name = "tally"
    version = 1

    def __init__(self) -> None:
        self.calls = 0

    def initial(self) -> dict[str, int]:
        return {"n": 0}

    def apply(self, state: dict[str, int], event: RecordedEvent) -> dict[str, int]:
        self.calls += 1
        state["n"] += 1
        return state

    def view(self, state: dict[str, int]) -> dict[str, Any]:
        return dict(state)

    def dump(self, state: dict[str, int]) -> Any:
        return dict(state)

    def load(self, data: Any) -> dict[str, int]:
        return dict(data)


async def test_a_restarted_runner_travels_in_time_from_a_persisted_snapshot(
    store: SQLiteEventStore,
) -> None:
    """Snapshots live in the log's checkpoint store: after a restart, time travel folds
    from the nearest one, not from position 0."""
    head = await append_all(store, scout_plan_build(Timeline()).events)
    assert head > 40
    async with ProjectionRunner(store, [Tally()], snapshot_every=10):
        pass  # a start (fold, snapshots) and a close (checkpoint) are what is tested
    stored = await store.checkpoints.snapshot_positions("tally", Tally.version)
    assert stored and all(position % 10 == 0 for position in stored)

    tally = Tally()
    async with ProjectionRunner(store, [tally], snapshot_every=10) as restarted:
        assert tally.calls == 0  # resumed from its checkpoint
        assert await restarted.state_at("tally", 37) == {"n": 37}
    assert tally.calls == 37 - max(p for p in stored if p <= 37)


async def test_a_rebuild_replaces_the_persisted_snapshots(store: SQLiteEventStore) -> None:
    head = await append_all(store, scout_plan_build(Timeline()).events)
    async with ProjectionRunner(store, [Tally()], snapshot_every=10) as runner:
        before = await store.checkpoints.snapshot_positions("tally", Tally.version)
        assert await runner.rebuild() == head
    after = await store.checkpoints.snapshot_positions("tally", Tally.version)
    assert after == before != []


async def test_folds_leave_the_garbage_collector_as_the_caller_had_it(
    store: SQLiteEventStore,
) -> None:
    import gc

    head = await append_all(store, scout_plan_build(Timeline()).events)
    before = gc.get_threshold()
    try:
        gc.set_threshold(500, 7, 9)
        async with ProjectionRunner(store, snapshot_every=10) as runner:
            await asyncio.gather(runner.rebuild(), runner.state_at("agents", head // 2))
        assert gc.get_threshold() == (500, 7, 9)
        assert gc.isenabled()
    finally:
        gc.set_threshold(*before)


class _Planted:
    """What a hostile log file could hold as a snapshot: a pickle that runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


# Snapshots are Zstandard frames; logs written by an earlier fleet hold zlib ones.
_CODECS = {"zstd": lambda raw: zstandard.ZstdCompressor().compress(raw), "zlib": zlib.compress}


@pytest.mark.parametrize("codec", _CODECS)
async def test_a_snapshot_that_names_code_is_refused_and_time_travel_folds_without_it(
    store: SQLiteEventStore, tmp_path: Path, codec: str
) -> None:
    """Snapshots are pickles in the log's own file, and a log may come from anyone:
    loading one must never run what it names. Such a blob is a missing snapshot."""
    head = await append_all(store, scout_plan_build(Timeline()).events)
    async with ProjectionRunner(store, [Tally()], snapshot_every=10):
        pass  # its start takes the snapshots (a short fold) and its close persists them
    stored = await store.checkpoints.snapshot_positions("tally", Tally.version)
    assert 30 in stored
    marker = tmp_path / "pwned"
    planted = _CODECS[codec](pickle.dumps({"n": _Planted(marker)}))
    await store.checkpoints.save_snapshots([Snapshot("tally", Tally.version, 30, planted)])

    tally = Tally()
    async with ProjectionRunner(store, [tally], snapshot_every=10) as restarted:
        assert await restarted.state_at("tally", 37) == {"n": 37}
    assert not marker.exists()
    assert tally.calls == 37  # folded from 0: the refused snapshot was not used
    assert head > 37


async def test_snapshots_are_zstandard_and_a_zlib_one_from_an_earlier_fleet_is_used(
    store: SQLiteEventStore,
) -> None:
    await append_all(store, scout_plan_build(Timeline()).events)
    async with ProjectionRunner(store, [Tally()], snapshot_every=10):
        pass  # its start takes the snapshots and its close persists them
    ours = await store.checkpoints.best_snapshot("tally", Tally.version, 30)
    assert ours is not None and ours.position == 30
    assert zstandard.frame_content_size(ours.blob) > 0, "a Zstandard frame"
    # The same state as an earlier fleet wrote it: zlib. A wrong count shows which was used.
    earlier = zlib.compress(pickle.dumps({"n": 1000}))
    await store.checkpoints.save_snapshots([Snapshot("tally", Tally.version, 30, earlier)])

    tally = Tally()
    async with ProjectionRunner(store, [tally], snapshot_every=10) as restarted:
        assert await restarted.state_at("tally", 37) == {"n": 1007}
    assert tally.calls == 7  # folded from the zlib snapshot at 30


async def test_a_long_fold_from_0_makes_its_snapshots_behind_it(store: SQLiteEventStore) -> None:
    """A fold from 0 of more than `snapshots_behind` events takes no snapshots (each is a
    copy of the state: O(N^2) over a long log); a background fold takes them after."""
    head = await append_all(store, scout_plan_build(Timeline()).events)
    tally = Tally()
    runner = ProjectionRunner(store, [tally], snapshot_every=10, snapshots_behind=20)
    async with runner:
        assert tally.calls == head  # the catch-up itself
        assert await store.checkpoints.snapshot_positions("tally", Tally.version) == []
        await runner.snapshots_made()
        stored = await store.checkpoints.snapshot_positions("tally", Tally.version)
        assert stored == list(range(10, head + 1, 10))
        assert tally.calls == 2 * head  # the backfill folded a copy, once
        calls = tally.calls
        assert await runner.state_at("tally", 37) == {"n": 37}
        assert tally.calls - calls == 7  # from the snapshot at 30
        assert runner.state("tally") == {"n": head}  # the live state untouched


async def test_a_start_fills_the_snapshots_a_backfill_left_missing(
    store: SQLiteEventStore,
) -> None:
    """Snapshots missing after the last one (a backfill cut short, some deleted) are made
    on the next start, from the last snapshot before the gap, not from 0."""
    head = await append_all(store, scout_plan_build(Timeline()).events)
    async with ProjectionRunner(store, [Tally()], snapshot_every=10) as runner:
        await runner.snapshots_made()
    stored = await store.checkpoints.snapshot_positions("tally", Tally.version)
    assert stored == list(range(10, head + 1, 10))
    await store.checkpoints.delete_snapshots("tally", positions=[p for p in stored if p > 20])

    tally = Tally()
    async with ProjectionRunner(store, [tally], snapshot_every=10) as restarted:
        assert tally.calls == 0  # resumed from its checkpoint
        await restarted.snapshots_made()
        assert tally.calls == head - 20
    assert await store.checkpoints.snapshot_positions("tally", Tally.version) == stored


async def test_a_rebuild_of_a_long_log_makes_its_snapshots_behind_it(
    store: SQLiteEventStore,
) -> None:
    head = await append_all(store, scout_plan_build(Timeline()).events)
    tally = Tally()
    async with ProjectionRunner(store, [tally], snapshot_every=10, snapshots_behind=20) as runner:
        await runner.snapshots_made()
        before = await store.checkpoints.snapshot_positions("tally", Tally.version)
        assert await runner.rebuild() == head
        await runner.snapshots_made()
        assert await store.checkpoints.snapshot_positions("tally", Tally.version) == before
        assert await runner.state_at("tally", head - 3) == {"n": head - 3}


async def test_closing_during_a_backfill_stops_it(store: SQLiteEventStore) -> None:
    head = await append_all(store, scout_plan_build(Timeline()).events)
    async with ProjectionRunner(store, [Tally()], snapshot_every=10, snapshots_behind=20):
        pass  # closed before the backfill could run: it is cancelled, not awaited
    async with ProjectionRunner(store, [Tally()], snapshot_every=10) as restarted:
        await restarted.snapshots_made()  # the next start makes them
    stored = await store.checkpoints.snapshot_positions("tally", Tally.version)
    assert stored == list(range(10, head + 1, 10))
