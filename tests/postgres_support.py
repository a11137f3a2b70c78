"""The PostgreSQL server the tests use: `FLEET_TEST_POSTGRES` (default
`postgresql://root@127.0.0.1:5432/test`). Each log of a test is a schema of its
own, dropped after the test. Without a server the tests skip, saying why, unless
`FLEET_POSTGRES_REQUIRED=1` (CI) makes them fail."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any

import pytest

POSTGRES_URL = os.environ.get("FLEET_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")
_postgres_reachable: str | None = None  # "" when reachable, else why not (checked once)


def run_in_thread(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run `coroutine` to its end on a loop of its own (from sync code inside a test's loop)."""
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as e:
            error.append(e)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def postgres_or_skip() -> str:
    """The test server's URL; skips (or fails, in CI) when it cannot be reached."""
    global _postgres_reachable
    if _postgres_reachable is None:
        import asyncpg

        async def probe() -> None:
            conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
            await conn.close()

        try:
            run_in_thread(probe())
            _postgres_reachable = ""
        except Exception as e:
            _postgres_reachable = f"no PostgreSQL at {POSTGRES_URL}: {e}"
    if _postgres_reachable:
        if os.environ.get("FLEET_POSTGRES_REQUIRED"):
            pytest.fail(_postgres_reachable)
        pytest.skip(_postgres_reachable)
    return POSTGRES_URL


def postgres_log_url(schema: str) -> str:
    """The URL of a log in `schema` of the test database."""
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}schema={schema}"


def drop_postgres_schemas(schemas: list[str]) -> None:
    """Drop the test's schemas (and every table in them)."""
    if not schemas:
        return
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
        try:
            for schema in schemas:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()

    run_in_thread(drop())
