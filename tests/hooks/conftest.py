"""Fixtures of the hooks tests: a real uvicorn server on 127.0.0.1 (an ephemeral port)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest
import uvicorn
from starlette.types import ASGIApp


@contextlib.asynccontextmanager
async def _serve(app: ASGIApp) -> AsyncIterator[str]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped the server
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True  # do not wait for hooks still hanging on a slow endpoint
        await task


@pytest.fixture
def serve() -> Callable[[ASGIApp], AbstractAsyncContextManager[str]]:
    """`async with serve(app) as base_url`: runs `app` under uvicorn on a loopback port."""
    return _serve
