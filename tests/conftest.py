"""Fixtures shared by every package's tests. Keep this small: package-specific
fixtures belong in tests/<package>/conftest.py.

`store_factory` opens event stores on a fresh log for the test, once per
backend in `STORE_BACKENDS`; a test written against it is part of the store
contract and runs unchanged on every backend. `store` is one open store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from events import EventStore, SQLiteEventStore

STORE_BACKENDS = ["sqlite"]


class StoreFactory:
    """Opens stores on one log (a fresh one per test) and closes them all at teardown.

    Backend-specific knowledge lives here, so the contract tests need none:
    `__call__` opens a store, `write_raw` puts a row in the log behind the
    store's back (to simulate rows written by another version of fleet).
    """

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self.location = str(tmp_path / "log.db")
        self._open: list[EventStore] = []

    async def __call__(self, **options: Any) -> EventStore:
        """A new open store on this test's log (the same log on every call)."""
        if self.backend != "sqlite":
            raise NotImplementedError(f"no store factory for backend {self.backend!r} yet")
        options.setdefault("poll_interval", 0.05)
        store = await SQLiteEventStore(self.location, **options).open()
        self._open.append(store)
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
        if self.backend != "sqlite":
            raise NotImplementedError(f"no store factory for backend {self.backend!r} yet")
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
        for store in reversed(self._open):
            await store.aclose()


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
