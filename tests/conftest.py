"""Fixtures shared by every package's tests. Keep this small: package-specific
fixtures belong in tests/<package>/conftest.py.

`reserved_port` is a loopback port kept for the test, for a server that stops
and starts again on the same address.

`store_factory` opens event stores on a fresh log for the test, once per
backend in `STORE_BACKENDS`; a test written against it is part of the store
contract and runs unchanged on every backend. `store` is one open store.
A backend joins by adding its name to `STORE_BACKENDS` and teaching
`StoreFactory` to open it (`_open`) and to write a raw row (`write_raw`).

The PostgreSQL backend runs against a real server: `FLEET_TEST_POSTGRES`
(default `postgresql://root@127.0.0.1:5432/test`); each log of a test is a
schema of its own, dropped after the test. Without a server those tests
skip, saying why, unless `FLEET_POSTGRES_REQUIRED=1` (CI) makes them fail.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from postgres_support import (
    POSTGRES_URL,
    drop_postgres_schemas,
    postgres_log_url,
    postgres_or_skip,
    run_in_thread,
)

from events import EventStore, SQLiteEventStore
from events.memory import MemoryEventStore, MemoryLog

STORE_BACKENDS = ["sqlite", "memory", "postgres"]


class StoreFactory:
    """Opens stores on one log (a fresh one per test) and closes them all at teardown.

    Backend-specific knowledge lives here, so the contract tests need none:
    `__call__` opens a store, `write_raw` puts a row in the log behind the
    store's back (to simulate rows written by another version of fleet).
    """

    def __init__(self, backend: str, tmp_path: Path) -> None:
        if backend not in STORE_BACKENDS:
            raise NotImplementedError(f"no store factory for backend {backend!r}")
        self.backend = backend
        self._tmp_path = tmp_path
        self._logs = 0
        self.schemas: list[str] = []
        if backend == "postgres":
            postgres_or_skip()
        self.location = self._new_log()
        self._memory: dict[str, MemoryLog] = {}
        self._open: list[EventStore] = []

    def _new_log(self) -> str:
        self._logs += 1
        if self.backend == "postgres":
            self.schemas.append(f"t_{uuid.uuid4().hex[:16]}_{self._logs}")
            return postgres_log_url(self.schemas[-1])
        return str(self._tmp_path / f"log-{self._logs}.db")

    async def __call__(self, **options: Any) -> EventStore:
        """A new open store on this test's log (the same log on every call)."""
        return await self._open_on(self.location, **options)

    async def other(self, **options: Any) -> EventStore:
        """A new open store on another, empty log of the same backend."""
        return await self._open_on(self._new_log(), **options)

    async def _open_on(self, location: str, **options: Any) -> EventStore:
        store: EventStore
        if self.backend == "sqlite":
            options.setdefault("poll_interval", 0.05)
            store = SQLiteEventStore(location, **options)
        elif self.backend == "postgres":
            from events.postgres import PostgresEventStore

            options.setdefault("poll_interval", 0.05)
            store = PostgresEventStore(location, **options)
        else:
            store = MemoryEventStore(self._memory.setdefault(location, MemoryLog()), **options)
        self._open.append(await store.open())
        return store

    def write_raw(
        self,
        *,
        stream_id: str,
        type: str,
        data_json: str,
        schema_version: int = 1,
        recorded_at_us: int = 1_700_000_000_000_000,
    ) -> int:
        """Append one row as-is, bypassing every check; returns its position."""
        if self.backend == "memory":
            log = self._memory.setdefault(self.location, MemoryLog())
            position = log.head + 1
            version = len(log.stream_positions(stream_id)) + 1
            log.insert_rows(
                [
                    (position, stream_id, version, type, schema_version, data_json,
                     None, None, None, None, None, "runtime", recorded_at_us)
                ]
            )  # fmt: skip
            return position
        if self.backend == "postgres":
            return int(
                run_in_thread(
                    _write_raw_postgres(
                        self.schemas[0], stream_id, type, schema_version, data_json, recorded_at_us
                    )
                )
            )
        with closing(sqlite3.connect(self.location, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            (head,) = conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
            (version,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?", (stream_id,)
            ).fetchone()
            conn.execute(
                "INSERT INTO events (position, stream_id, version, type, schema_version, data, "
                "source, recorded_at) VALUES (?, ?, ?, ?, ?, ?, 'runtime', ?)",
                (head + 1, stream_id, version + 1, type, schema_version, data_json, recorded_at_us),
            )
            conn.execute("COMMIT")
        return int(head) + 1

    async def aclose(self) -> None:
        try:
            for store in reversed(self._open):
                await store.aclose()
        finally:
            drop_postgres_schemas(self.schemas)


async def _write_raw_postgres(
    schema: str, stream_id: str, type: str, schema_version: int, data_json: str, at_us: int
) -> int:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        async with conn.transaction():
            head = await conn.fetchval(f"SELECT position FROM {schema}.log_head FOR UPDATE")
            version = await conn.fetchval(
                f"SELECT COALESCE(MAX(version), 0) FROM {schema}.events WHERE stream_id = $1",
                stream_id,
            )
            await conn.execute(
                f"INSERT INTO {schema}.events (position, stream_id, version, type, "
                "schema_version, data, source, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, "
                "'runtime', $7)",
                head + 1, stream_id, version + 1, type, schema_version, data_json, at_us,
            )  # fmt: skip
            await conn.execute(f"UPDATE {schema}.log_head SET position = $1", head + 1)
    finally:
        await conn.close()
    return int(head) + 1


@pytest.fixture(params=STORE_BACKENDS)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Opens stores of one backend on a fresh log; every store is closed after the test."""
    factory = StoreFactory(request.param, tmp_path)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
async def store(store_factory: StoreFactory) -> EventStore:
    """One open store on a fresh log."""
    return await store_factory()


@pytest.fixture
def reserved_port() -> Iterator[int]:
    """A loopback port the OS picked, kept for the test: a socket stays bound to it (not
    listening), so no other process can take it between two servers on it, nor get it as
    a connection's local port, while a server (SO_REUSEADDR, as fleet's) still binds it.
    A port found free and let go could be taken before the server bound it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


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
