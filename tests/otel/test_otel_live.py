"""The live exporter: spans leave as events arrive, and a restart neither skips nor repeats one."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from otel_support import Receiver, receiving

from api import ApiConfig, serving
from api.otel import CheckpointPositions, LiveExporter, SpanSender, map_events
from events import NewEvent, RecordedEvent, SQLiteEventStore


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def copy_events(store: SQLiteEventStore, events: list[RecordedEvent]) -> None:
    """Append `events` again, in order (so they get the same positions on a fresh log)."""
    for event in events:
        data = event.data
        await store.append(event.stream_id, [NewEvent(data, event.meta)])  # type: ignore[arg-type]


async def live(store: SQLiteEventStore, db: Path, receiver: Receiver) -> LiveExporter:
    sender = SpanSender(receiver.url, timeout_s=2)
    positions = CheckpointPositions(store.checkpoints, f"otel-export {sender.endpoint}")
    exporter = LiveExporter(store, sender, positions)
    await exporter.__aenter__()
    original = exporter.aclose

    async def aclose() -> None:
        await original()
        await sender.aclose()

    exporter.aclose = aclose  # type: ignore[method-assign]
    return exporter


async def test_live_export_sends_what_the_batch_export_sends(log: Path, run_id: str) -> None:
    async with SQLiteEventStore(log, poll_interval=0.05) as store, receiving() as receiver:
        expected = map_events(await store.read_all(after=0))
        head = await store.head()
        exporter = await live(store, log, receiver)
        try:
            await until(lambda: exporter.position == head)
        finally:
            await exporter.aclose()
    assert sorted((s.span_id, s.parent_id, s.name) for s in receiver.spans) == sorted(
        (f"{r.span_id:016x}", f"{r.parent_id:016x}" if r.parent_id else "", r.name)
        for r in expected
    )


async def test_a_restart_resumes_without_sending_twice_or_skipping(
    log: Path, run_id: str, tmp_path: Path
) -> None:
    async with SQLiteEventStore(log) as recorded:
        events = await recorded.read_all(after=0)
    half = len(events) // 2
    db = tmp_path / "live.db"
    async with SQLiteEventStore(db, poll_interval=0.05) as store, receiving() as receiver:
        await copy_events(store, events[:half])
        first = await live(store, db, receiver)
        try:
            await until(lambda: first.position == half)
        finally:
            await first.aclose()
        sent_before = len(receiver.spans)
        assert sent_before > 0
        await copy_events(store, events[half:])  # the log goes on while the exporter is down
        second = await live(store, db, receiver)
        try:
            await until(lambda: second.position == len(events))
        finally:
            await second.aclose()
        expected = map_events(await store.read_all(after=0))
    counts = Counter(s.span_id for s in receiver.spans)
    assert max(counts.values()) == 1, "a span was sent twice"
    assert set(counts) == {f"{r.span_id:016x}" for r in expected}, "a span was skipped"
    # Spans open across the restart (the workflow, the orchestrator) were closed after it.
    root = next(s for s in receiver.spans if not s.parent_id)
    assert receiver.spans.index(root) >= sent_before


async def test_a_receiver_that_refuses_is_retried_with_the_same_spans(
    log: Path, run_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with SQLiteEventStore(log, poll_interval=0.05) as store, receiving() as receiver:
        receiver.refuse = 2
        expected = map_events(await store.read_all(after=0))
        exporter = await live(store, log, receiver)
        try:
            await until(lambda: len(receiver.spans) >= len(expected))
        finally:
            await exporter.aclose()
    assert receiver.refused == 2
    assert exporter.failures >= 1
    # The server's log says why: the receiver's answer, which the SDK keeps to its own log.
    said = [r.getMessage() for r in caplog.records if r.name == "api.otel._live"]
    assert any("did not take" in m and "Service Unavailable" in m for m in said), said
    assert len(receiver.spans) == len({s.span_id for s in receiver.spans}) == len(expected)


async def test_serve_with_an_otlp_endpoint_exports_live_and_reports_it_in_metrics(
    log: Path, run_id: str
) -> None:
    async with receiving() as receiver:
        config = ApiConfig(db=log, runtime=False, store_poll_s=0.05, otlp_endpoint=receiver.url)
        async with serving(config) as server, httpx.AsyncClient(base_url=server.url) as http:
            head = (await http.get("/healthz")).json()["head"]
            await until(lambda: len(receiver.spans) > 0)

            async def exported() -> str:
                return (await http.get("/metrics")).text

            text = await exported()
            async with asyncio.timeout(30):
                while f"fleet_otlp_export_position {float(head)}" not in text:
                    await asyncio.sleep(0.05)
                    text = await exported()
    assert "fleet_otlp_export_lag_events 0.0" in text
    assert {s.trace_id for s in receiver.spans} == {receiver.spans[0].trace_id}
