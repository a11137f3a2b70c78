"""The model client's HTTP: the SDK over aiohttp still goes where a user's network sends it.

`ModelClient.from_env` makes its SDK clients over aiohttp (`runtime/_client.py`, note 6),
not over the SDK's default httpx. A user behind a proxy relies on the SDK's rule all the
same: the proxy the environment names carries the model calls, and `NO_PROXY` is honoured.
(A client left open would fail the suite: aiohttp warns of an unclosed session, and the
suite turns warnings into errors.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from runtime import ModelClient, Simulator

MESSAGES = [{"role": "user", "content": "hello through the proxy"}]


@dataclass
class ForwardProxy:
    """A plain HTTP forward proxy on loopback: one request a connection, logged, then piped."""

    requests: list[str] = field(default_factory=list)  # each request line as it arrived

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, _, rest = head.partition(b"\r\n")
            method, target, version = line.split(b" ")
            self.requests.append(line.decode())
            # absolute-form (http://host:port/path) to origin-form for the server
            authority, _, path = target.split(b"//", 1)[1].partition(b"/")
            host, _, port = authority.partition(b":")
            up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
            up_writer.write(b" ".join([method, b"/" + path, version]) + b"\r\n" + rest)
            await asyncio.gather(
                _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@asynccontextmanager
async def forward_proxy() -> AsyncIterator[tuple[ForwardProxy, str]]:
    proxy = ForwardProxy()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield proxy, f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def test_the_model_calls_go_through_the_proxy_the_environment_names(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy() as (proxy, url):
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", url)
        async with ModelClient.from_env(simulator_base_url=sim.base_url, env={}) as client:
            reply = await client.respond(model="haiku", system="s", messages=MESSAGES)
        assert "hello through the proxy" in reply.text
        assert proxy.requests == [f"POST {sim.base_url}/v1/messages HTTP/1.1"]


async def test_without_a_proxy_the_model_calls_go_straight_to_the_server(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy() as (proxy, url):
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with ModelClient.from_env(simulator_base_url=sim.base_url, env={}) as client:
            reply = await client.respond(model="haiku", system="s", messages=MESSAGES)
        assert "hello through the proxy" in reply.text
        assert proxy.requests == []
