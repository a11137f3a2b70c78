"""Issue 12, item 9: a full disk is a 503 with Retry-After, logged once, and /healthz says the
log is degraded until writes work again; nothing acknowledged is lost, and no restart is needed.

The disk is real: a 4 MiB tmpfs holding the log, filled with a file until the
kernel says ENOSPC, then emptied. Mounting needs root (CAP_SYS_ADMIN); elsewhere
the test is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from api import ApiConfig, create_app


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted at a fresh folder (unmounted after the test)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = folder / "filler"
    for block in (65536, 512):  # then the last partial block, if it fits
        with pytest.raises(OSError, match="No space left") as full:
            _write_until_error(filler, block)
        assert full.value.errno == errno.ENOSPC
    return filler


def _write_until_error(path: Path, block: int) -> None:
    with path.open("ab") as handle:
        while True:
            handle.write(b"\0" * block)
            handle.flush()
            os.fsync(handle.fileno())


@pytest.fixture
async def client(small_disk: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiConfig(db=small_disk / "fleet.db", runtime=False, store_poll_s=0.05))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def _payload(n: int) -> dict[str, object]:
    return {"hook_event_name": "Notification", "session_id": "s1", "n": n, "pad": "x" * 2000}


async def test_a_full_disk_is_a_503_logged_once_and_healthz_recovers_without_restart(
    client: httpx.AsyncClient, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    acked = []
    for n in range(5):
        answer = await client.post("/v1/hooks/ingest", json=_payload(n))
        assert answer.status_code == 201
        acked.append(answer.json()["position"])
    filler = _fill(small_disk)

    with caplog.at_level(logging.DEBUG, logger="api"):
        refused = [await client.post("/v1/hooks/ingest", json=_payload(100 + n)) for n in range(3)]
    health = await client.get("/healthz")
    reads = await client.get("/v1/events", params={"limit": 100})

    assert [r.status_code for r in refused] == [503, 503, 503]
    assert refused[0].headers["retry-after"] == "5"
    assert refused[0].json()["type"] == "urn:fleet:problem:log-unavailable"
    assert "full" in refused[0].json()["detail"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None  # one line, no traceback
    assert health.status_code == 503
    assert health.json()["store"] == "degraded"
    assert "full" in health.json()["store_error"]
    assert reads.status_code == 200
    assert [e["position"] for e in reads.json()["events"]] == acked  # nothing half-written

    filler.unlink()
    async with asyncio.timeout(30):
        while (health := await client.get("/healthz")).status_code != 200:
            await asyncio.sleep(0.2)
    assert health.json()["store"] == "ok"
    answer = await client.post("/v1/hooks/ingest", json=_payload(200))
    assert answer.status_code == 201
    positions = [e["position"] for e in (await client.get("/v1/events")).json()["events"]]
    assert positions == [*acked, answer.json()["position"]] == list(range(1, 7))
