"""The live stream's bounds over a real socket: what a reader that stops reading may hold, and when
it is cut off (at its bound, not after the send timeout), per stream and across streams.

Each test sets the send timeout far beyond its own wait, so a stream ended by
that timeout cannot pass. The memory figures (300 stalled readers) are in
`bench/faults.py`; here each door is shown closed.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import httpx
from apitest_support import append_ticks, raw_get, read_ids, reset, wait_until
from starlette.types import Receive, Scope, Send

from api import ApiConfig, Serving, serving
from api._broadcast import Broadcaster
from api._sse import _next_page
from events import Meta, NewEvent, SQLiteEventStore, TaskCreated

KIB = 1024
NEVER = 3600.0  # the send timeout: a test waits far less


def _parts(server: Serving) -> tuple[SQLiteEventStore, Broadcaster]:
    assert server.app.services is not None
    return server.app.services.store, server.app.services.broadcaster


async def _stalled(server: Serving, path: str = "/v1/events/stream") -> asyncio.StreamWriter:
    """A client that reads the response headers and then nothing."""
    reader, writer = await raw_get(server.url, path, rcvbuf=4096)
    await reader.readuntil(b"\r\n\r\n")
    return writer


async def _read_until_closed(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> int:
    got = 0
    async with asyncio.timeout(30):
        try:
            while data := await reader.read(1 << 20):
                got += len(data)
        except ConnectionResetError:
            pass  # the server ending the stalled stream is what the test waits for
    writer.close()
    return got


async def test_a_reader_that_stops_is_aborted_at_its_bound_not_at_the_send_timeout(
    tmp_path: Path,
) -> None:
    config = ApiConfig(
        db=tmp_path / "f.db", runtime=False, sse_send_timeout_s=NEVER, sse_lag_bytes=256 * KIB
    )
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
        store, broadcaster = _parts(server)
        reader, writer = await raw_get(server.url, "/v1/events/stream", rcvbuf=4096)
        await reader.readuntil(b"\r\n\r\n")
        async with http.stream("GET", "/v1/events/stream") as healthy:
            await wait_until(lambda: broadcaster.subscriber_count == 2, what="two subscribers")
            ids: list[int] = []
            reading = asyncio.create_task(read_ids(healthy, 3400, within=300, into=ids))
            appended = 0
            while broadcaster.aborts == 0 and appended < 3000:  # 20 KB each: 60 MB at most
                await append_ticks(store, 10, size=20_000)
                appended += 10
                # The reading client keeps up before more is sent: on a loaded machine it
                # could fall behind the 256 KiB bound by chance, and be cut off too.
                await wait_until(
                    lambda n=appended: len(ids) >= n, within=120, what="the reader to keep up"
                )
            assert broadcaster.aborts == 1, "the stalled reader was aborted"
            await append_ticks(store, max(0, 400 - appended))
            total = max(400, appended)
            await wait_until(lambda: len(ids) >= total, within=120, what="the reader's events")
            reading.cancel()
        assert ids == list(range(1, total + 1)), "the reading client missed nothing meanwhile"
        assert broadcaster.cut_offs == 1
        await wait_until(lambda: broadcaster.open_streams == 0, what="both streams to end")
        assert broadcaster.subscriber_count == 0
        # The stalled client finds its connection ended by the server, unread bytes and all.
        got = await _read_until_closed(writer, reader)
        assert got < appended * 21_000


async def test_what_stalled_streams_hold_is_bounded_in_total(tmp_path: Path) -> None:
    """Many readers that stop: past `sse_buffer_bytes` held, the largest are aborted."""
    config = ApiConfig(
        db=tmp_path / "f.db", runtime=False, sse_send_timeout_s=NEVER,
        sse_lag_bytes=64 * 1024 * KIB, sse_buffer_bytes=1024 * KIB, sse_queue=100_000,
        sse_recent=100_000,
    )  # fmt: skip
    async with serving(config) as server:
        store, broadcaster = _parts(server)
        writers = [await _stalled(server) for _ in range(12)]
        await wait_until(lambda: broadcaster.subscriber_count == 12, what="12 subscribers")
        for _ in range(150):  # until each has filled its socket and is stuck in a send
            await append_ticks(store, 10, size=50_000)
            if broadcaster.aborts:
                break
        await wait_until(lambda: broadcaster.open_streams < 12, within=30, what="an abort")
        assert broadcaster.cut_offs == 0, "the lag bound was not what ended them"
        # The bound is enforced at each sweep (every second), the largest first: under load
        # an append can land between the abort seen here and the sweep that restores it.
        await wait_until(
            lambda: broadcaster.held_bytes <= 1024 * KIB + 64 * KIB,
            within=30,
            what="what the streams hold back under the bound",
        )
        for writer in writers:
            reset(writer)
        await wait_until(lambda: broadcaster.open_streams == 0, what="every stream to end")


async def test_a_stalled_reader_catching_up_from_far_back_holds_little(tmp_path: Path) -> None:
    """A client resuming from position 0 of a big log and not reading: the stream reads the
    log in small pages and is aborted by the total bound, not by the send timeout."""
    # Each stalled stream gets stuck in the send of a 200 KB event, of which its socket
    # (64 KiB of send buffer, 4 KiB of receive buffer) takes less than half: 12 of them
    # hold more than the 1 MiB total bound whatever the kernel takes, so aborts must come.
    config = ApiConfig(
        db=tmp_path / "f.db", runtime=False, sse_send_timeout_s=NEVER, sse_recent=16,
        sse_buffer_bytes=1024 * KIB,
    )  # fmt: skip
    async with SQLiteEventStore(config.db) as store:
        for _ in range(10):
            await append_ticks(store, 10, size=200_000)  # 20 MB, far beyond the ring
    async with serving(config) as server:
        _, broadcaster = _parts(server)
        writers = [await _stalled(server, "/v1/events/stream?from=0") for _ in range(12)]
        await wait_until(lambda: broadcaster.aborts > 0, within=60, what="an abort")
        # The bound is enforced at each sweep (every second): the largest go first.
        await wait_until(
            lambda: broadcaster.held_bytes <= 1024 * KIB + 256 * KIB,
            within=30,
            what="what the streams hold back under the bound",
        )
        await wait_until(
            lambda: broadcaster.open_streams == 12 - broadcaster.aborts,
            what="the aborted streams to end",
        )
        assert broadcaster.subscriber_count == 0, "none of them caught up: they never read"
        for writer in writers:
            reset(writer)
        await wait_until(lambda: broadcaster.open_streams == 0, what="every stream to end")


def test_catch_up_pages_shrink_for_large_events() -> None:
    assert _next_page([b"x" * 100_000] * 3, 64, 256 * KIB) == 2
    assert _next_page([b"x" * 300] * 64, 64, 256 * KIB) == 500
    assert _next_page([b"x" * 2_000_000], 64, 256 * KIB) == 1
    assert _next_page([], 64, 256 * KIB) == 64


async def test_after_a_restart_a_resume_from_before_the_head_reads_the_log(
    tmp_path: Path,
) -> None:
    """Regression: the ring started empty at the head answered "nothing after 0", so a client
    resuming after a server restart got nothing until a new event came."""
    db = tmp_path / "f.db"
    async with SQLiteEventStore(db) as store:
        await append_ticks(store, 5)
    config = ApiConfig(db=db, runtime=False)
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
        async with http.stream("GET", "/v1/events/stream?from=0") as response:
            assert await read_ids(response, 5) == [1, 2, 3, 4, 5]
        headers = {"Last-Event-ID": "3"}
        async with http.stream("GET", "/v1/events/stream", headers=headers) as response:
            assert await read_ids(response, 2) == [4, 5]


async def test_streams_under_serving_see_their_connection(tmp_path: Path) -> None:
    """`serving()` runs uvicorn with fleet's protocol: the stream can abort its connection."""
    from api._transport import CONNECTION_EXTENSION, Connection, connection_of

    seen: list[object] = []
    async with serving(ApiConfig(db=tmp_path / "f.db", runtime=False)) as server:
        app = server.app
        inner = app.middleware_stack or app.build_middleware_stack()

        async def spy(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(connection_of(scope))
            await inner(scope, receive, send)

        app.middleware_stack = spy
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/healthz")).status_code == 200
    assert len(seen) == 1
    assert isinstance(seen[0], Connection)
    assert CONNECTION_EXTENSION == "fleet.connection"


_THE_LOG = [tracemalloc.Filter(True, "*/events/*"), tracemalloc.Filter(True, "*/aiosqlite/*")]
"""Where what a read of the log allocates is allocated: the store, its driver's thread."""


def _held_by_the_log(before: tracemalloc.Snapshot) -> int:
    """Bytes allocated by reading the log since `before` and still alive."""
    after = tracemalloc.take_snapshot().filter_traces(_THE_LOG)
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


async def test_a_stalled_catch_up_holds_its_page_as_frames_not_as_decoded_events(
    tmp_path: Path,
) -> None:
    """A reader from far back that stops reading holds one page of frames: the events read
    from the log for them (their text and envelopes, as much again) are gone before the
    frames are sent (200 clients catching up from 0 at once peaked 140 MB higher)."""
    config = ApiConfig(db=tmp_path / "f.db", runtime=False, sse_send_timeout_s=NEVER, sse_recent=16)
    async with serving(config) as server:
        store, broadcaster = _parts(server)
        for batch in range(4):  # 2 KB each: 4 MB, far more than the socket's buffers
            events = [NewEvent(TaskCreated(task_id=f"t{batch}-{i}", title="x" * 2000), Meta())
                      for i in range(500)]  # fmt: skip
            await store.append("ticks", events)
        del events
        # One small event more: the broadcaster's own read lets go of its last page of 500
        # (a subscription holds its page until the next), which is not the stream's to hold.
        await store.append("ticks", [NewEvent(TaskCreated(task_id="last", title="x"), Meta())])
        await wait_until(lambda: broadcaster.position == 2001, what="the broadcaster at 2001")
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot().filter_traces(_THE_LOG)
            writer = await _stalled(server, "/v1/events/stream?from=0")  # from the log
            held = 0

            async def measured_while_stuck() -> bool:
                # Measured inside one send that lasts across the measure: had the stream
                # moved on (the kernel may take a page more before it sticks for good), its
                # next page's rows could be the driver's last result, or its events alive.
                nonlocal held
                outlets = list(broadcaster._outlets.values())
                if len(outlets) != 1 or not outlets[0].in_send:
                    return False
                outlet, sends = outlets[0], outlets[0].sends
                # The driver's thread keeps its last result until its next query: not the
                # stream's.
                await store.read_all(limit=1)
                held = _held_by_the_log(before)
                return outlet.in_send and outlet.sends == sends

            await wait_until(measured_while_stuck, what="a measure while the stream is stuck")
        finally:
            tracemalloc.stop()
        reset(writer)
        await wait_until(lambda: broadcaster.open_streams == 0, what="the stream to end")
    assert held < 16 * KIB, f"{held} bytes of the log's events held by a stalled stream"


async def test_streams_past_the_most_open_at_once_are_refused_until_one_ends(
    tmp_path: Path,
) -> None:
    """`sse_max_streams` open, one more is 503 with Retry-After (each may hold a catch-up
    page while it sends it: a thousand clients from 0 held about 1 GB); one ends, one opens."""
    config = ApiConfig(db=tmp_path / "f.db", runtime=False, sse_max_streams=2)
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
        _, broadcaster = _parts(server)
        # Four at once: two are answered, two refused.
        opened = await asyncio.gather(*(raw_get(server.url, "/v1/events/stream?from=0")
                                        for _ in range(4)))  # fmt: skip
        heads = [await reader.readuntil(b"\r\n\r\n") for reader, _ in opened]
        statuses = sorted(head.split(b" ", 2)[1].decode() for head in heads)
        assert statuses == ["200", "200", "503", "503"]
        assert all(b"retry-after: 5" in head.lower() for head in heads if b" 503 " in head)
        refused = await http.get("/v1/events/stream")
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5"
        problem = refused.json()
        assert problem["type"] == "urn:fleet:problem:too-many-streams"
        assert "2 event streams are open" in problem["detail"]
        assert broadcaster.open_streams == 2
        assert (await http.get("/healthz")).status_code == 200  # other routes answer
        live = [writer for head, (_, writer) in zip(heads, opened, strict=True) if b" 200 " in head]
        reset(live[0])
        await wait_until(lambda: broadcaster.open_streams == 1, what="one stream to end")
        async with http.stream("GET", "/v1/events/stream?from=0") as again:
            assert again.status_code == 200
        for _, writer in opened:
            if writer is not live[0]:
                writer.close()
        await wait_until(lambda: broadcaster.open_streams == 0, what="every stream to end")
