"""The PostgreSQL server the tests use: `FLEET_TEST_POSTGRES` (default
`postgresql://root@127.0.0.1:5432/test`). Each log of a test is a schema of its
own, dropped after the test. Without a server the tests skip, saying why, unless
`FLEET_POSTGRES_REQUIRED=1` (CI) makes them fail."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
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


class PostgresProxy:
    """A TCP proxy to the test server that a test can take down and bring back, standing
    in for a server restart or a network cut without touching the shared server.

    `url(schema)` is a log URL through the proxy. `down()` cuts every connection
    through it and closes at once each one opened until `up()`; `refused` counts those.
    `stall()` keeps connections open but passes nothing on until `up()` (a network that
    drops packets silently).
    """

    def __init__(self) -> None:
        from urllib.parse import urlsplit

        target = urlsplit(POSTGRES_URL)
        self._target = (target.hostname or "127.0.0.1", target.port or 5432)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.is_up = True
        self.refused = 0
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> PostgresProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, schema: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(postgres_log_url(schema))
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host).geturl()

    def down(self) -> None:
        self.is_up = False
        for link in list(self._links):
            link.transport.abort()
        self._links.clear()

    def up(self) -> None:
        self.is_up = True
        self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    async def aclose(self) -> None:
        self.down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_up:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()
                self._links.discard(dst)

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@asynccontextmanager
async def proxied_log() -> AsyncIterator[tuple[PostgresProxy, str]]:
    """A `PostgresProxy` and the URL of a fresh log through it (its schema dropped after);
    skips the test without a server (`postgres_or_skip`)."""
    postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:16]}_p"
    proxy = await PostgresProxy().start()
    try:
        yield proxy, proxy.url(schema)
    finally:
        await proxy.aclose()
        drop_postgres_schemas([schema])
