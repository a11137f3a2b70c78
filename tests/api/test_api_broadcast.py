"""The broadcaster on a real log: one encoding per event, an exact seam, bounded queues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apitest_support import append_batch, append_ticks, wait_until

from api._broadcast import Broadcaster, Subscriber
from events import EventFilter, SQLiteEventStore


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    async with SQLiteEventStore(tmp_path / "fleet.db", poll_interval=0.05) as store:
        yield store


async def _drain(subscriber: Subscriber, count: int) -> list[int]:
    seen: list[int] = []
    async with asyncio.timeout(30):
        while len(seen) < count:
            batch = await subscriber.next_batch()
            assert batch, f"the subscriber ended ({subscriber.state}: {subscriber.reason})"
            seen += [frame.position for frame in batch]
    return seen


async def test_starts_at_the_head_and_fans_out_new_events(log: SQLiteEventStore) -> None:
    await append_ticks(log, 3)
    async with Broadcaster(log, flush_interval=0) as broadcaster:
        assert broadcaster.position == 3
        a, b = broadcaster.subscribe(), broadcaster.subscribe()
        await append_ticks(log, 4)
        assert await _drain(a, 4) == [4, 5, 6, 7]
        assert await _drain(b, 4) == [4, 5, 6, 7]


async def test_each_event_is_encoded_once_and_shared(log: SQLiteEventStore) -> None:
    async with Broadcaster(log, flush_interval=0) as broadcaster:
        subscribers = [broadcaster.subscribe() for _ in range(5)]
        await append_ticks(log, 1)
        batches = [await s.next_batch() for s in subscribers]
    frames = [batch[0] for batch in batches]
    assert all(frame.data is frames[0].data for frame in frames)


async def test_filters_are_applied_per_subscriber(log: SQLiteEventStore) -> None:
    async with Broadcaster(log, flush_interval=0) as broadcaster:
        only_a = broadcaster.subscribe(EventFilter.of(stream_ids=["a"]))
        everything = broadcaster.subscribe()
        await append_ticks(log, 2, stream="a")
        await append_ticks(log, 2, stream="b")
        await append_ticks(log, 1, stream="a")
        assert await _drain(everything, 5) == [1, 2, 3, 4, 5]
        assert await _drain(only_a, 3) == [1, 2, 5]


async def test_frames_after_and_subscribe_make_an_exact_seam(log: SQLiteEventStore) -> None:
    """Catch up from the ring and register in one step while appends go on: no gap, no duplicate."""
    async with Broadcaster(log, flush_interval=0, recent=10_000) as broadcaster:
        stop = asyncio.Event()

        async def appender() -> None:
            while not stop.is_set():
                await append_ticks(log, 1)

        task = asyncio.create_task(appender())
        await wait_until(lambda: broadcaster.position >= 20, what="20 events")
        frames = broadcaster.frames_after(5)
        subscriber = broadcaster.subscribe()
        assert frames is not None
        seam = broadcaster.position
        live = await _drain(subscriber, 10)
        stop.set()
        await task
    caught_up = [frame.position for frame in frames]
    assert caught_up == list(range(6, seam + 1))
    assert live[:10] == list(range(seam + 1, seam + 11))


async def test_frames_after_is_none_beyond_the_ring(log: SQLiteEventStore) -> None:
    async with Broadcaster(log, flush_interval=0, recent=16, queue_limit=8) as broadcaster:
        await append_batch(log, 40)
        await wait_until(lambda: broadcaster.position == 40, what="the batch")
        assert broadcaster.frames_after(10) is None
        frames = broadcaster.frames_after(30)
        assert frames is not None
        assert [f.position for f in frames] == list(range(31, 41))
        assert broadcaster.frames_after(40) == []
        assert broadcaster.frames_after(99) == []


async def test_a_full_queue_cuts_the_subscriber_off_and_frees_it(log: SQLiteEventStore) -> None:
    async with Broadcaster(log, flush_interval=0, queue_limit=5) as broadcaster:
        slow = broadcaster.subscribe()
        fast = broadcaster.subscribe()
        seen: list[int] = []
        for _ in range(20):  # one commit at a time, read before the next: the other never reads
            await append_ticks(log, 1)
            seen += await _drain(fast, 1)
        assert seen == list(range(1, 21))
        await wait_until(lambda: slow.state == "cut_off", what="the cut-off")
        assert slow.pending == 0
        assert "more than 5 events behind" in slow.reason
        assert await slow.next_batch() == []
        assert broadcaster.cut_offs == 1
        assert broadcaster.subscriber_count == 1


async def test_wake_ups_are_coalesced_under_load(log: SQLiteEventStore) -> None:
    """With a flush interval, a burst of appends reaches a subscriber in a few large batches.

    At most one flush a second: fewer than 25 batches unless the 50 appends took over 24 s
    (at 0.05 s, a loaded machine's slow fsyncs could spread them over as many intervals)."""
    async with Broadcaster(log, flush_interval=1.0, wakeups_per_s=1) as broadcaster:
        subscriber = broadcaster.subscribe()
        batches: list[int] = []

        async def read() -> None:
            while sum(batches) < 50:
                batches.append(len(await subscriber.next_batch()))

        reader = asyncio.create_task(read())
        await append_ticks(log, 50)
        await asyncio.wait_for(reader, 60)
    assert sum(batches) == 50
    assert len(batches) < 25


async def test_close_ends_every_subscriber_and_refuses_new_ones(log: SQLiteEventStore) -> None:
    broadcaster = Broadcaster(log, flush_interval=0)
    async with broadcaster:
        subscriber = broadcaster.subscribe()
        waiting = asyncio.create_task(subscriber.next_batch())
        await asyncio.sleep(0.01)
    assert await asyncio.wait_for(waiting, 30) == []
    assert subscriber.state == "closed"
    assert broadcaster.subscriber_count == 0
    late = broadcaster.subscribe()
    assert late.state == "closed"
    await broadcaster.aclose()  # twice is fine


async def test_end_streams_ends_subscribers_but_keeps_following(log: SQLiteEventStore) -> None:
    async with Broadcaster(log, flush_interval=0) as broadcaster:
        subscriber = broadcaster.subscribe()
        broadcaster.end_streams("shutting down")
        assert await subscriber.next_batch() == []
        assert broadcaster.subscribe().state == "closed"
        await append_ticks(log, 2)
        await wait_until(lambda: broadcaster.position == 2, what="the broadcaster to follow")


async def test_unsubscribe_is_idempotent(log: SQLiteEventStore) -> None:
    async with Broadcaster(log) as broadcaster:
        subscriber = broadcaster.subscribe()
        broadcaster.unsubscribe(subscriber)
        broadcaster.unsubscribe(subscriber)
        assert broadcaster.subscriber_count == 0


async def test_close_while_the_log_is_busy_never_hangs(log: SQLiteEventStore) -> None:
    """Regression: a cancel landing as the store's wait times out was lost (Python 3.11)."""
    for _ in range(10):
        broadcaster = Broadcaster(log, flush_interval=0)
        async with broadcaster:
            await append_ticks(log, 1)
        assert not broadcaster.running


async def test_the_ring_is_bounded_by_bytes_too(log: SQLiteEventStore) -> None:
    """Big events: the ring keeps at most `recent_bytes`; a reader beyond it is cut off."""
    async with Broadcaster(
        log, flush_interval=0, recent=1000, queue_limit=1000, recent_bytes=50_000
    ) as broadcaster:
        slow = broadcaster.subscribe()
        await append_ticks(log, 40, size=5_000)  # about 200 kB of frames
        await wait_until(lambda: broadcaster.position == 40, what="the events")
        frames = broadcaster.frames_after(36)  # about 5 kB each: the last 9 or so are kept
        assert frames is not None
        assert [f.position for f in frames] == [37, 38, 39, 40]
        assert broadcaster.frames_after(20) is None
        assert broadcaster.frames_after(0) is None
        assert await slow.next_batch() == []
        assert slow.state == "cut_off"


async def test_frame_filter_is_the_event_filter(log: SQLiteEventStore) -> None:
    from apitest_support import seed

    from api._broadcast import Frame

    events = await seed(log, run_id="r1") + await seed(log, run_id="r2")
    filters = [
        EventFilter.of(run_id="r2"),
        EventFilter.of(agent_id="r1-a1", types=["AgentCreated", "AgentCompleted"]),
        EventFilter.of(stream_ids=["run-r1", "task-r2-t1"]),
        EventFilter.of(types=["RunStarted"], run_id="r1"),
    ]
    for where in filters:
        assert [Frame.of(e).matches(where) for e in events] == [where.matches(e) for e in events]
