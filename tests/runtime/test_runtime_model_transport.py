"""The model client's HTTP: the SDK over aiohttp still goes where a user's network sends it.

`ModelClient.from_env` makes its SDK clients over aiohttp (`runtime/_client.py`, note 6),
not over the SDK's default httpx. A user behind a proxy relies on the SDK's rule all the
same: the proxy the environment names carries the model calls, and `NO_PROXY` is honoured.
(A client left open would fail the suite: aiohttp warns of an unclosed session, and the
suite turns warnings into errors.)

The SDK's own OpenTelemetry spans (note 7 there) are built only where something can record
them: a process that sets a tracer provider gets them; without one, and without the SDK's
environment variable, the client is made with them off.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from opentelemetry import trace

from runtime import ModelClient, Simulator

ROOT = Path(__file__).resolve().parents[2]

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


# -- the SDK's own OpenTelemetry spans (`runtime/_client.py`, note 7) -----------------------

SPANS_SCRIPT = """
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from runtime import ModelClient, Simulator

async def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # as an application that traces does, at its start
    async with Simulator() as sim:
        async with ModelClient.from_env(simulator_base_url=sim.base_url, env={}) as client:
            await client.respond(model="haiku", system="s", messages=[{"role": "user", "content": "hi"}])
    for span in exporter.get_finished_spans():
        print(span.name, span.kind.name, span.attributes["gen_ai.request.model"])

asyncio.run(main())
"""


async def test_a_process_with_a_tracer_provider_gets_the_sdk_spans_of_its_model_calls() -> None:
    # A process of its own: a tracer provider can be set once a process, and the suite's
    # other tests run without one.
    env = {k: v for k, v in os.environ.items() if "OPEN_TELEMETRY" not in k}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SPANS_SCRIPT,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    assert out.decode().split() == ["anthropic.messages.create", "CLIENT", "claude-haiku-5-5"]


def _sdk_tracing_enabled(client: ModelClient) -> bool:
    enabled: bool = client._client.open_telemetry["traces"]["enabled"]
    return enabled


async def test_without_a_tracer_provider_the_sdk_builds_no_spans(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    async with ModelClient.from_env(simulator_base_url=sim.base_url, env={}) as client:
        reply = await client.respond(model="haiku", system="s", messages=MESSAGES)
        assert reply.text
        assert not _sdk_tracing_enabled(client)


async def test_the_sdk_environment_variable_still_decides_when_it_is_set(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "true")
    async with ModelClient.from_env(simulator_base_url=sim.base_url, env={}) as client:
        assert _sdk_tracing_enabled(client)
