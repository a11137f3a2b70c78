"""Issue 12, item 7: imports are streamed, one at a time, stay in the run's own streams, and
can be signed.

A resealed file (its SHA-256 recomputed after an edit) passes the checksum, so
what it may do is bounded by the stream rules; only a signature says who made it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from replay_support import Recording, reseal

from api import ApiConfig, create_app
from events import (
    EventFilter,
    ExportInvalid,
    SQLiteEventStore,
    export_lines,
    import_stream,
    parse_export,
    spool_export,
)

KEY = b"k" * 32


async def _export(log: Path, run_id: str, *, sign_key: bytes | None = None) -> list[bytes]:
    async with SQLiteEventStore(log, readonly=True) as store:
        return [line async for line in await export_lines(store, run_id, sign_key=sign_key)]


def _moved(lines: list[bytes], stream: str, *, meta_run: str | None = None) -> list[bytes]:
    """The lines with the last event moved into `stream` as its first event (a forger's edit);
    left in its stream if `stream` is empty."""
    event = json.loads(lines[-2])
    if stream:
        event["stream_id"], event["version"] = stream, 1
    if meta_run is not None:
        event["meta"]["run_id"] = meta_run
    return [*lines[:-2], json.dumps(event).encode() + b"\n", lines[-1]]


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _streams(db: Path) -> set[str]:
    async with SQLiteEventStore(db) as store:
        return {e.stream_id for e in await store.read_all()}


@pytest.mark.parametrize(
    ("stream", "meta_run", "reason"),
    [
        ("session-victim", None, "is not one of run"),
        ("agent-victim", None, "does not begin with the AgentCreated"),
        ("run-other", None, "is not one of run"),
        ("", "other", "meta.run_id 'other'"),
    ],
)
async def test_a_resealed_file_cannot_put_an_event_in_another_stream(
    log: Path,
    recorded_pattern: Recording,
    tmp_path: Path,
    stream: str,
    meta_run: str | None,
    reason: str,
) -> None:
    run_id = recorded_pattern.run_id
    lines = _moved(await _export(log, run_id), stream.format(run=run_id), meta_run=meta_run)
    forged = reseal(lines)
    target = tmp_path / "target.db"
    async with SQLiteEventStore(target) as store:
        await store.append("agent-keep", [])  # the target exists; nothing of the run is in it

        with pytest.raises(ExportInvalid, match=reason):
            await import_stream(store, _chunks(forged, 1 << 16))

        assert await store.head() == 0
    with pytest.raises(ExportInvalid, match=reason):
        parse_export(forged)


async def test_an_import_split_anywhere_lands_whole(
    log: Path, recorded_pattern: Recording, tmp_path: Path
) -> None:
    """Lines cut across chunks of 7 bytes are put back together: the same run lands."""
    data = b"".join(await _export(log, recorded_pattern.run_id))
    async with SQLiteEventStore(tmp_path / "t.db") as store:
        result = await import_stream(store, _chunks(data, 7))
        assert result.events == recorded_pattern.events == await store.head()
        run = EventFilter.of(run_id=recorded_pattern.run_id)
        assert len(await store.read_all(where=run)) == recorded_pattern.events


@pytest.mark.parametrize("cut", [-1, -40, -500, -2_000])
async def test_a_file_cut_mid_line_is_called_truncated_and_one_without_its_last_newline_lands(
    log: Path, recorded_pattern: Recording, tmp_path: Path, cut: int
) -> None:
    """Regression: a cut line was 'not a JSON Lines run export (Invalid control character...)'."""
    data = b"".join(await _export(log, recorded_pattern.run_id))
    assert data.endswith(b"\n")
    cut_short = data[:-1][:cut]
    async with SQLiteEventStore(tmp_path / "t.db") as store:
        with pytest.raises(ExportInvalid, match=r"the file ends mid-line: truncated\?"):
            await import_stream(store, _chunks(cut_short, 1 << 10))
        with pytest.raises(ExportInvalid, match=r"the file ends mid-line: truncated\?"):
            parse_export(cut_short)
        assert await store.head() == 0
        # Saved without its last newline, it is whole: it lands.
        assert parse_export(data[:-1]).events == recorded_pattern.events
        result = await import_stream(store, _chunks(data[:-1], 1 << 10))
        assert result.events == recorded_pattern.events


async def test_a_line_longer_than_any_event_is_refused_before_the_rest_is_read() -> None:
    """An upload of one endless line is refused after a bounded read, not held whole."""
    read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal read
        yield b'{"format":"fleet-run","version":1,"run_id":"r","exported_at":"x","head":1}\n'
        while True:
            read += 1 << 16
            yield b"x" * (1 << 16)

    with pytest.raises(ExportInvalid, match="a line longer than"):
        await spool_export(endless(), max_event_bytes=64 * 1024)
    assert read < 2 * (64 * 1024 * 6 + 64 * 1024) + (1 << 20)


async def test_a_signed_export_imports_with_its_key_and_nothing_else_does(
    log: Path, recorded_pattern: Recording, tmp_path: Path
) -> None:
    run_id = recorded_pattern.run_id
    signed = b"".join(await _export(log, run_id, sign_key=KEY))
    unsigned = b"".join(await _export(log, run_id))
    assert b'"hmac_sha256":' in signed.splitlines()[-1]
    edited = reseal(signed.replace(b"scout", b"sc0ut").splitlines(keepends=True)[:-1])
    # The forger keeps the old signature beside a recomputed checksum.
    old_mac = json.loads(signed.splitlines()[-1])["hmac_sha256"]
    trailer = json.loads(edited.splitlines()[-1])
    edited = (
        b"".join(edited.splitlines(keepends=True)[:-1])
        + json.dumps({**trailer, "hmac_sha256": old_mac}).encode()
        + b"\n"
    )

    refusals = [
        (unsigned, KEY, "not signed"),
        (signed, b"another key of 32 bytes, at least", "signature does not match"),
        (edited, KEY, "signature does not match"),
    ]
    async with SQLiteEventStore(tmp_path / "t.db") as store:
        for data, key, reason in refusals:
            with pytest.raises(ExportInvalid, match=reason):
                await import_stream(store, _chunks(data, 1 << 16), verify_key=key)
        assert await store.head() == 0

        result = await import_stream(store, _chunks(signed, 1 << 16), verify_key=KEY)
        assert result.events == recorded_pattern.events
    # Without a key to check, a signed file is an export like another.
    async with SQLiteEventStore(tmp_path / "u.db") as store:
        assert (await import_stream(store, _chunks(signed, 1 << 16))).events == result.events


@pytest.fixture
async def upload_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app with an empty log that requires signed imports."""
    config = ApiConfig(db=tmp_path / "up.db", runtime=False, import_key=KEY.decode())
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def test_the_server_takes_one_import_at_a_time_and_only_signed_ones_when_told(
    log: Path, recorded_pattern: Recording, upload_api: httpx.AsyncClient
) -> None:
    run_id = recorded_pattern.run_id
    signed = b"".join(await _export(log, run_id, sign_key=KEY))
    unsigned = b"".join(await _export(log, run_id))
    half = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield signed[: len(signed) // 2]
        half.set()
        await go_on.wait()
        yield signed[len(signed) // 2 :]

    first = asyncio.create_task(upload_api.post("/v1/runs/import", content=slow_body()))
    async with asyncio.timeout(30):
        await half.wait()
    busy = await upload_api.post("/v1/runs/import", content=signed)
    go_on.set()
    done = await asyncio.wait_for(first, 60)

    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "5"
    assert busy.json()["type"] == "urn:fleet:problem:import-in-progress"
    assert done.status_code == 201, done.text
    assert done.json()["events"] == recorded_pattern.events
    # The slot is free again; an unsigned file is refused, since this server wants signatures.
    refused = await upload_api.post("/v1/runs/import", content=unsigned)
    assert refused.status_code == 422
    assert "not signed" in refused.json()["detail"]


async def test_a_forged_upload_is_refused_over_http(
    log: Path, recorded_pattern: Recording, tmp_path: Path
) -> None:
    forged = reseal(_moved(await _export(log, recorded_pattern.run_id), "session-victim"))
    app = create_app(ApiConfig(db=tmp_path / "v.db", runtime=False))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        refused = await client.post("/v1/runs/import", content=forged)
        assert refused.status_code == 422
        assert "session-victim" in refused.json()["detail"]
        assert (await client.get("/v1/events")).json()["events"] == []
