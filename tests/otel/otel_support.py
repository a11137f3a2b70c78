"""Helpers of the OpenTelemetry tests: a real OTLP/HTTP receiver on loopback, and a recorded run.

The receiver is a small Starlette app under uvicorn that decodes what it is
sent with the official `opentelemetry-proto` messages, as a collector would:
nothing of fleet's own code reads the spans back.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runtime import RuntimeOptions, load_pattern, open_runtime, prepare_workspace, run_pattern

TASK = "rename `count_words` to `word_count` everywhere"


@dataclass
class Span:
    """One received span, decoded from the protobuf."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[str]
    status_code: int


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@dataclass
class Receiver:
    """What the receiver got; `refuse` makes the next N requests fail with 503."""

    url: str = ""
    spans: list[Span] = field(default_factory=list)
    requests: int = 0
    refused: int = 0
    refuse: int = 0
    content_types: set[str] = field(default_factory=set)

    async def traces(self, request: Request) -> Response:
        body = await request.body()
        self.requests += 1
        self.content_types.add(request.headers.get("content-type", ""))
        if self.refuse > 0:
            self.refuse -= 1
            self.refused += 1
            return Response(b"down for a moment", status_code=503)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        for rs in message.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.spans.append(
                        Span(
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            name=s.name,
                            kind=s.kind,
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            attributes={kv.key: _value(kv.value) for kv in s.attributes},
                            events=[e.name for e in s.events],
                            status_code=s.status.code,
                        )
                    )
        return Response(
            ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
        )

    def by_id(self) -> dict[str, Span]:
        return {s.span_id: s for s in self.spans}


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    """A real OTLP/HTTP trace receiver on a free loopback port, for the `async with` block."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/v1/traces", receiver.traces, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                await asyncio.sleep(0.01)
        receiver.url = f"http://127.0.0.1:{port}"
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()


async def record_pattern_run(base: Path) -> tuple[Path, str]:
    """Record one scout-plan-build run on the sample repository: (log, run id)."""
    workspace = await prepare_workspace(base / "repo")
    db = base / "fleet.db"
    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        result = await run_pattern(rt.fleet, load_pattern("scout-plan-build"), TASK)
        assert result.status == "completed", result.error
    return db, result.run_id
