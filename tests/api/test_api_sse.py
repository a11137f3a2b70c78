"""The live event stream over a real socket (uvicorn on 127.0.0.1): resume, fan-out, bounds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import httpx
import pytest
from apitest_support import (
    SSEEvent,
    append_batch,
    append_ticks,
    raw_get,
    read_ids,
    reset,
    sse_events,
    wait_until,
)

from api import ApiConfig, Serving, serving
from events import SQLiteEventStore


def _store(server: Serving) -> SQLiteEventStore:
    assert server.app.services is not None
    return server.app.services.store


async def _health(http: httpx.AsyncClient) -> dict[str, int]:
    response = await http.get("/healthz")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_stream_resumes_after_last_event_id_with_every_position_once_in_order(
    server: Serving, http: httpx.AsyncClient
) -> None:
    """A client reads 100 events, disconnects, reconnects with Last-Event-ID while appends go on."""
    store = _store(server)
    await append_ticks(store, 20)
    stop = asyncio.Event()

    async def keep_appending() -> None:
        while not stop.is_set():
            await append_ticks(store, 1)
            await asyncio.sleep(0.002)

    appender = asyncio.create_task(keep_appending())
    try:
        async with http.stream("GET", "/v1/events/stream?from=0") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            first = await read_ids(response, 100)
        await asyncio.sleep(0.05)  # events keep arriving while the client is away
        headers = {"Last-Event-ID": str(first[-1])}
        async with http.stream("GET", "/v1/events/stream", headers=headers) as response:
            second = await read_ids(response, 100)
    finally:
        stop.set()
        await appender
    seen = first + second
    assert seen == list(range(1, 201))


async def test_stream_without_position_sends_only_new_events(
    server: Serving, http: httpx.AsyncClient
) -> None:
    store = _store(server)
    await append_ticks(store, 5)
    async with http.stream("GET", "/v1/events/stream") as response:
        await wait_until(lambda: server.app.services.broadcaster.subscriber_count == 1,  # type: ignore[union-attr]
                         what="the subscriber")  # fmt: skip
        await append_ticks(store, 3)
        assert await read_ids(response, 3) == [6, 7, 8]


async def test_a_client_that_saw_no_event_resumes_where_its_stream_started(
    server: Serving, http: httpx.AsyncClient
) -> None:
    """A stream opened without a position starts with an `id:` of the head, so a browser (or a
    monitor that keeps the last `id:` it read, as the SSE spec does) that loses the connection
    before any event arrives reconnects with Last-Event-ID and misses nothing written
    meanwhile (a server restart, another process appending)."""
    store = _store(server)
    await append_ticks(store, 5)
    last_event_id = None  # the EventSource's lastEventId: set by any `id:` field
    async with http.stream("GET", "/v1/events/stream?type=TaskCreated") as response:
        async with asyncio.timeout(10):
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    last_event_id = line[3:].strip()
                if line == "":
                    break  # the first frame, and nothing else: the client goes away
    assert last_event_id == "5"
    await append_ticks(store, 3)  # while it is away
    headers = {"Last-Event-ID": last_event_id}
    async with http.stream(
        "GET", "/v1/events/stream?type=TaskCreated", headers=headers
    ) as response:
        assert await read_ids(response, 3) == [6, 7, 8]


@pytest.mark.timeout(60)  # the server it guards against spun on the loop: fail, not hang
async def test_a_stream_opened_before_the_server_has_seen_the_head_starts_there(
    tmp_path: Path,
) -> None:
    """Another process appends; this server's log reads the new head at once, its
    broadcaster fans the events out only at its next poll. A stream opened between the
    two starts at the head and gets what comes after it."""
    config = ApiConfig(db=tmp_path / "fleet.db", store_poll_s=30.0, runtime=False)
    async with (
        serving(config) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        SQLiteEventStore(config.db) as other,  # as another process would
    ):
        await append_ticks(other, 5)
        broadcaster = server.app.services.broadcaster  # type: ignore[union-attr]
        assert broadcaster.position == 0 < await _store(server).head() == 5
        async with http.stream("GET", "/v1/events/stream") as response:
            await wait_until(lambda: broadcaster.subscriber_count == 1, what="the subscriber")
            await append_ticks(_store(server), 3)  # this server's own: fanned out at once
            assert await read_ids(response, 3) == [6, 7, 8]


async def test_fifty_concurrent_clients_receive_the_same_sequence(
    server: Serving, http: httpx.AsyncClient
) -> None:
    store = _store(server)
    await append_ticks(store, 10)

    async def client() -> list[int]:
        async with http.stream("GET", "/v1/events/stream?from=0") as response:
            return await read_ids(response, 60, within=120)

    readers = [asyncio.create_task(client()) for _ in range(50)]
    await asyncio.sleep(0.05)
    await append_ticks(store, 50)
    results = await asyncio.gather(*readers)
    assert all(ids == list(range(1, 61)) for ids in results)


async def test_stream_filters_by_run_agent_and_type(
    server: Serving, http: httpx.AsyncClient
) -> None:
    from apitest_support import seed

    store = _store(server)
    await seed(store, run_id="r1")
    await seed(store, run_id="r2")
    async with http.stream(
        "GET", "/v1/events/stream?from=0&agent_id=r2-a1&type=ToolCallRequested&type=AgentCompleted"
    ) as response:
        items = []
        async with asyncio.timeout(30):
            async for item in sse_events(response):
                if isinstance(item, SSEEvent):
                    items.append(item.data)
                    if len(items) == 2:
                        break
    assert [(e["type"], e["meta"]["agent_id"]) for e in items] == [  # type: ignore[index]
        ("ToolCallRequested", "r2-a1"),
        ("AgentCompleted", "r2-a1"),
    ]


async def test_stalled_client_is_cut_off_while_others_keep_pace(tmp_path: Path) -> None:
    """A client that stops reading is cut off; a reading client gets every event meanwhile."""
    # Bounded by bytes (2 MiB behind), not by a count a loaded machine's healthy reader
    # could pass in one burst: the stalled client falls 6 MB behind, the reader a little.
    config = ApiConfig(
        db=tmp_path / "fleet.db", runtime=False, sse_queue=100_000,
        sse_lag_bytes=2 * 1024 * 1024, sse_send_timeout_s=60,
    )  # fmt: skip
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
        store = _store(server)
        broadcaster = server.app.services.broadcaster  # type: ignore[union-attr]
        reader, writer = await raw_get(server.url, "/v1/events/stream", rcvbuf=4096)
        await reader.readuntil(b"\r\n\r\n")  # headers: then never read again
        async with http.stream("GET", "/v1/events/stream") as response:
            await wait_until(lambda: broadcaster.subscriber_count == 2, what="two subscribers")
            healthy = asyncio.create_task(read_ids(response, 3000, within=120))
            # 3000 events of ~2 KB: far more than the stalled socket's buffers hold.
            for _ in range(30):
                await append_ticks(store, 100, size=2000)
                await asyncio.sleep(0)
            ids = await healthy
        reset(writer)
        assert ids == list(range(1, 3001))
        assert broadcaster.cut_offs == 1
        await wait_until(lambda: broadcaster.open_streams == 0, what="both streams to close")
        assert broadcaster.subscriber_count == 0


async def test_cut_off_client_resumes_from_its_last_event_id(tmp_path: Path) -> None:
    """A slow reader sees the stream end with a comment, reconnects and misses nothing."""
    config = ApiConfig(db=tmp_path / "fleet.db", runtime=False, sse_queue=8, sse_flush_s=0)
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
        store = _store(server)
        broadcaster = server.app.services.broadcaster  # type: ignore[union-attr]
        seen: list[int] = []
        comments: list[str] = []
        async with http.stream("GET", "/v1/events/stream?from=0") as response:
            await wait_until(lambda: broadcaster.subscriber_count == 1, what="the subscriber")
            # 100 events in one commit reach the broadcaster at once: the queue of 8 overflows.
            await append_batch(store, 100)
            async with asyncio.timeout(10):
                async for item in sse_events(response):
                    if isinstance(item, SSEEvent):
                        seen.append(item.id)  # type: ignore[arg-type]
                    else:
                        comments.append(item)
        assert broadcaster.cut_offs == 1
        assert any(c.startswith("cut off") for c in comments)
        async with http.stream(
            "GET", "/v1/events/stream", headers={"Last-Event-ID": str(seen[-1] if seen else 0)}
        ) as response:
            rest = await read_ids(response, 100 - len(seen))
        assert seen + rest == list(range(1, 101))


async def test_abruptly_killed_connections_leave_no_subscriber(
    server: Serving, http: httpx.AsyncClient
) -> None:
    """Open many streams, reset them mid-stream: the subscriber count returns to zero."""
    store = _store(server)
    await append_ticks(store, 5)
    connections = []
    for i in range(40):
        path = "/v1/events/stream" + ("?from=0" if i % 2 else "")
        connections.append(await raw_get(server.url, path))
    for reader, _ in connections:
        await reader.readuntil(b"\r\n\r\n")
    await wait_until(lambda: _subscribers(server) == 40, what="40 subscribers")
    await append_ticks(store, 5)
    for i, (_, writer) in enumerate(connections):
        if i % 2:
            reset(writer)  # RST
        else:
            writer.close()  # FIN
    await wait_until(lambda: _subscribers(server) == 0, what="no subscriber left")
    health = await _health(http)
    assert health["subscribers"] == 0
    assert health["streams"] == 0


def _subscribers(server: Serving) -> int:
    assert server.app.services is not None
    return server.app.services.broadcaster.subscriber_count


async def test_server_shutdown_ends_open_streams_promptly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = ApiConfig(db=tmp_path / "fleet.db", runtime=False)
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
        streams = [
            await http.send(http.build_request("GET", "/v1/events/stream"), stream=True)
            for _ in range(5)
        ]
        await wait_until(lambda: _subscribers(server) == 5, what="5 subscribers")
    # Leaving `serving` shut the server down: every stream ended by itself and the app
    # closed, before uvicorn's backstop (timeout_graceful_shutdown) had to cancel any.
    assert "graceful shutdown exceeded" not in caplog.text
    assert server.app.services is None
    for response in streams:
        with contextlib.suppress(httpx.HTTPError):
            await response.aclose()


async def test_heartbeat_comments_keep_an_idle_stream_alive(tmp_path: Path) -> None:
    config = ApiConfig(db=tmp_path / "fleet.db", runtime=False, sse_ping_s=0.1)
    async with (
        serving(config) as server,
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("GET", "/v1/events/stream") as response,
    ):
        comments = []
        async with asyncio.timeout(5):
            async for item in sse_events(response):
                if isinstance(item, str):
                    comments.append(item)
                    if len(comments) == 2:
                        break
    assert comments == ["ping", "ping"]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("-1", "a whole number"),
        ("abc", "a whole number"),
        ("1.5", "a whole number"),
        ("99999999999999999999999", "a whole number"),
        ("1000", "beyond the head"),
    ],
)
async def test_bad_last_event_id_is_a_clear_400(
    server: Serving, http: httpx.AsyncClient, value: str, detail: str
) -> None:
    await append_ticks(_store(server), 3)
    response = await http.get("/v1/events/stream", headers={"Last-Event-ID": value})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert _subscribers(server) == 0


@pytest.mark.parametrize("value", ["-1", "x", "1000"])
async def test_bad_from_is_a_clear_400(
    server: Serving, http: httpx.AsyncClient, value: str
) -> None:
    response = await http.get(f"/v1/events/stream?from={value}")
    assert response.status_code == 400
    assert response.json()["title"] in ("Invalid query", "Invalid resume position")


async def test_last_event_id_wins_over_from(server: Serving, http: httpx.AsyncClient) -> None:
    """A browser reconnects to the same URL (with ?from=) and adds Last-Event-ID: that wins."""
    await append_ticks(_store(server), 10)
    async with http.stream(
        "GET", "/v1/events/stream?from=0", headers={"Last-Event-ID": "7"}
    ) as response:
        assert await read_ids(response, 3) == [8, 9, 10]


async def test_stream_catches_up_from_the_log_beyond_the_recent_ring(tmp_path: Path) -> None:
    """A resume from before the in-memory ring reads the log in pages, then goes live."""
    config = ApiConfig(db=tmp_path / "fleet.db", runtime=False, sse_recent=16)
    async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
        store = _store(server)
        for _ in range(12):
            await append_ticks(store, 100)
        async with http.stream("GET", "/v1/events/stream?from=3") as response:
            reading = asyncio.create_task(read_ids(response, 1207))
            await append_ticks(store, 10)
            assert await reading == list(range(4, 1211))


async def test_a_client_resetting_during_a_catch_up_ends_its_stream_at_once(
    server: Serving, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a catch-up from the ring never awaits while the socket takes what is written,
    so after a reset every chunk left was written to the dead connection, each a
    "socket.send() raised exception" warning from asyncio (hundreds per client)."""
    store = _store(server)
    await append_ticks(store, 300, size=10_000)  # 3 MB in the ring
    connections = [
        await raw_get(server.url, "/v1/events/stream?from=0", rcvbuf=8192) for _ in range(30)
    ]
    await wait_until(lambda: _subscribers(server) + _streams(server) >= 30, what="30 streams")
    for reader, writer in connections:
        await reader.read(50_000)  # room again: the server writes on...
        reset(writer)  # ...and the client is gone
    await wait_until(lambda: _streams(server) == 0, what="every stream ended")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], caplog.text
    assert (await _health(http))["subscribers"] == 0


def _streams(server: Serving) -> int:
    assert server.app.services is not None
    return server.app.services.broadcaster.open_streams
