"""`GET /v1/events`: the log over HTTP, filtered and paged."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from typing import Any

import httpx
import pytest
from apitest_support import append_ticks, seed

from api._broadcast import sse_frame
from events import SQLiteEventStore, encode_event

STREAMS = ("run-r1", "task-r2-t1")
TYPES = ("AgentCreated", "RunStarted")


async def _all(client: httpx.AsyncClient, query: str = "", limit: int = 7) -> list[dict]:  # type: ignore[type-arg]
    """Every event matching `query`, following `next` page by page."""
    events: list[dict] = []  # type: ignore[type-arg]
    after = 0
    while True:
        response = await client.get(f"/v1/events?after={after}&limit={limit}{query}")
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["events"]
        assert len(page["events"]) <= limit
        if page["next"] is None:
            return events
        assert page["next"] == page["events"][-1]["position"]
        after = page["next"]


async def test_events_round_trip_as_the_store_renders_them(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    recorded = await seed(store)
    response = await client.get("/v1/events")
    assert response.status_code == 200
    page = response.json()
    assert page["events"] == [json.loads(json.dumps(e.to_json_dict())) for e in recorded]
    assert page["next"] is None
    assert page["head"] == recorded[-1].position


async def test_paging_with_next_visits_every_event_once(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    recorded = await seed(store, agents=3)
    events = await _all(client, limit=4)
    assert [e["position"] for e in events] == [e.position for e in recorded]


async def test_last_full_page_has_no_next(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    recorded = await seed(store)
    response = await client.get(f"/v1/events?limit={len(recorded)}")
    assert response.json()["next"] is None
    response = await client.get(f"/v1/events?limit={len(recorded) - 1}")
    assert response.json()["next"] == recorded[-2].position


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("&run_id=r2", lambda e: e["meta"]["run_id"] == "r2"),
        ("&agent_id=r1-a1", lambda e: e["meta"]["agent_id"] == "r1-a1"),
        ("&stream_id=run-r1&stream_id=task-r2-t1", lambda e: e["stream_id"] in STREAMS),
        ("&type=AgentCreated&type=RunStarted", lambda e: e["type"] in TYPES),
        ("&run_id=r1&type=ToolCallCompleted", lambda e: e["meta"]["run_id"] == "r1"
         and e["type"] == "ToolCallCompleted"),
    ],
)  # fmt: skip
async def test_filters_return_exactly_the_matching_events(
    client: httpx.AsyncClient, store: SQLiteEventStore, query: str, check: Callable[[Any], bool]
) -> None:
    recorded = await seed(store, run_id="r1") + await seed(store, run_id="r2")
    everything = [json.loads(json.dumps(e.to_json_dict())) for e in recorded]
    expected = [e for e in everything if check(e)]
    assert expected
    assert await _all(client, query, limit=3) == expected


async def test_position_range_is_after_exclusive_until_inclusive(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    await seed(store)
    response = await client.get("/v1/events?after=3&until=6")
    assert [e["position"] for e in response.json()["events"]] == [4, 5, 6]


async def test_an_empty_range_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events?after=6&until=3")
    assert response.status_code == 400
    assert "before" in response.json()["detail"]


async def test_limit_over_the_maximum_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events?limit=1001")
    assert response.status_code == 400
    assert "less than or equal to 1000" in response.json()["detail"]


async def test_an_event_of_a_type_this_version_does_not_know_is_served_raw(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """A newer fleet wrote it: the API still pages past it, showing its raw data."""
    with closing(sqlite3.connect(store.path, isolation_level=None)) as conn:
        conn.execute(
            "INSERT INTO events (position, stream_id, version, type, schema_version, data, source,"
            " recorded_at) VALUES (1, 'future', 1, 'FromTheFuture', 1, '{\"x\": 1}', 'runtime', 1)"
        )
    response = await client.get("/v1/events")
    (event,) = response.json()["events"]
    assert (event["type"], event["data"]) == ("FromTheFuture", {"x": 1})


async def test_pages_and_stream_frames_carry_each_event_s_wire_json(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """The page and the SSE stream write an event as `events.encode_event` does, one line."""
    recorded = await seed(store)
    page = (await client.get("/v1/events")).json()["events"]
    assert page == [json.loads(encode_event(event)) for event in recorded]
    for event in recorded:
        frame = sse_frame(event)
        assert frame == b"id: %d\ndata: %s\n\n" % (event.position, encode_event(event))
        assert frame.count(b"\n") == 3


def test_ready_frames_are_joined_into_chunks_of_bounded_size() -> None:
    from api._sse import _chunks

    limit = 3000
    small = [b"x" * 100] * 10
    assert list(_chunks(small, limit)) == [b"x" * 1000]
    mixed = [b"y" * 1000] * 7
    chunks = list(_chunks(mixed, limit))
    assert b"".join(chunks) == b"".join(mixed)
    assert [len(c) for c in chunks] == [3000, 3000, 1000]
    big = b"z" * 5000
    alone = list(_chunks([b"a" * 10, big, b"b" * 10], limit))
    assert alone == [b"a" * 10, big, b"b" * 10]
    assert alone[1] is big, "a frame over the limit is sent as it is, not copied"
    assert list(_chunks([], limit)) == []


async def test_a_page_of_large_events_ends_at_page_bytes_and_next_goes_on(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    """Regression: `limit=1000` of events of up to 1 MiB each was one answer of up to a
    gigabyte, built in memory; a page now ends once it holds `page_bytes`."""
    big = await append_ticks(store, 60, size=100_000)  # 6 MB of events
    small = await append_ticks(store, 30)
    response = await client.get("/v1/events?limit=1000")
    assert response.status_code == 200
    page = response.json()
    assert len(response.content) < 4 * 2**20 + 200_000  # the default page_bytes, one event over
    assert 1 <= len(page["events"]) < len(big)
    assert page["next"] == page["events"][-1]["position"]
    # Every event once, in order, following `next`; the filters and `until` still hold.
    events = await _all(client, limit=1000)
    assert [e["position"] for e in events] == [e.position for e in big + small]
    until = small[4].position
    events = await _all(client, f"&type=TaskCreated&until={until}", limit=1000)
    assert [e["position"] for e in events] == [e.position for e in big + small[:5]]
    # A page of small events is cut by `limit` as before.
    page = (await client.get(f"/v1/events?after={big[-1].position}&limit=7")).json()
    assert [e["position"] for e in page["events"]] == [e.position for e in small[:7]]
    assert page["next"] == small[6].position
