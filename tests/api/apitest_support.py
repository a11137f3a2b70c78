"""Helpers for the API tests: a seeded log, an SSE reader over httpx, raw socket clients."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    EventData,
    EventStore,
    Meta,
    ModelResponded,
    NewEvent,
    RecordedEvent,
    RunCompleted,
    RunStarted,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
)

TOKEN = "s3cret-token"
"""The bearer token of the API tests that need one."""


async def seed(store: EventStore, *, run_id: str = "r1", agents: int = 2) -> list[RecordedEvent]:
    """A small finished run: agents created, commanded, a tool call, a response, a task moved."""
    recorded: list[RecordedEvent] = []
    run_meta = Meta(run_id=run_id)
    recorded += await store.append(
        f"run-{run_id}",
        [NewEvent(RunStarted(run_id=run_id, task="build it", pattern="scout-builder"), run_meta)],
    )
    recorded += await store.append(
        f"task-{run_id}-t1",
        [NewEvent(TaskCreated(task_id=f"{run_id}-t1", title="the task"), run_meta)],
    )
    for i in range(agents):
        agent_id = f"{run_id}-a{i}"
        meta = Meta(run_id=run_id, agent_id=agent_id)
        role = "scout" if i == 0 else "builder"
        tu = f"tu{i}"
        usage = Usage(input_tokens=100, output_tokens=20)
        data: list[EventData] = [
            AgentCreated(agent_id=agent_id, name=f"agent {i}", role=role, model="sim-small"),
            AgentCommanded(agent_id=agent_id, prompt="look around"),
            ToolCallRequested(agent_id=agent_id, tool_use_id=tu, name="read", input={"path": "a"}),
            ToolCallCompleted(agent_id=agent_id, tool_use_id=tu, name="read", files_read=["a.py"]),
            ModelResponded(agent_id=agent_id, model="sim-small", usage=usage, cost_usd=0.001),
            AgentCompleted(agent_id=agent_id, summary="done", artifacts=["plan.md"]),
        ]
        recorded += await store.append(f"agent-{agent_id}", [NewEvent(d, meta) for d in data])
    recorded += await store.append(
        f"task-{run_id}-t1", [NewEvent(TaskMoved(task_id=f"{run_id}-t1", column="BUILD"), run_meta)]
    )
    recorded += await store.append(
        f"run-{run_id}", [NewEvent(RunCompleted(run_id=run_id, summary="ok"), run_meta)]
    )
    return recorded


JSON = {"content-type": "application/json"}
"""The header a JSON body needs (anything else is 415)."""


def hook_payload(session_id: str, point: str, **fields: object) -> bytes:
    """A Claude Code hook payload of `session_id` at `point`, as `POST /v1/hooks/ingest` takes it."""
    body = {
        "session_id": session_id,
        "transcript_path": "/home/u/.claude/projects/x/session.jsonl",
        "cwd": "/home/u/project",
        "hook_event_name": point,
        **fields,
    }
    return json.dumps(body).encode()


_ticks = itertools.count()


async def append_ticks(
    store: EventStore, count: int, *, stream: str = "ticks", size: int = 0
) -> list[RecordedEvent]:
    """`count` small events (one append each), optionally padded to about `size` bytes."""
    out: list[RecordedEvent] = []
    for _ in range(count):
        data = TaskCreated(task_id=f"tick-{next(_ticks)}", title="x" * size if size else "tick")
        out += await store.append(stream, [NewEvent(data, Meta(run_id="ticks"))])
    return out


async def append_batch(
    store: EventStore, count: int, *, stream: str = "ticks"
) -> list[RecordedEvent]:
    """`count` small events in one append (one commit: the broadcaster sees them at once)."""
    events = [
        NewEvent(TaskCreated(task_id=f"tick-{next(_ticks)}", title="tick"), Meta(run_id="ticks"))
        for _ in range(count)
    ]
    return await store.append(stream, events)


@dataclass
class SSEEvent:
    id: int | None
    data: dict[str, Any] | None


async def sse_events(response: httpx.Response) -> AsyncIterator[SSEEvent | str]:
    """Parse an SSE body: yields each event, and each comment as a `str`."""
    event_id: int | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SSEEvent(event_id, json.loads("\n".join(data)))
            event_id, data = None, []
        elif line.startswith(":"):
            yield line[1:].strip()
        elif line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


async def read_ids(
    response: httpx.Response, count: int, *, within: float = 10.0, into: list[int] | None = None
) -> list[int]:
    """The ids of the next `count` events of an open SSE response (appended to `into` as
    they come, when given: a test can watch the reader's progress)."""
    ids: list[int] = [] if into is None else into
    async with asyncio.timeout(within):
        async for item in sse_events(response):
            if isinstance(item, SSEEvent):
                assert item.id is not None
                assert item.data is not None
                assert item.data["position"] == item.id
                ids.append(item.id)
                if len(ids) == count:
                    break
    return ids


async def wait_until(predicate: Any, *, within: float = 60.0, what: str = "condition") -> None:
    """Poll a sync or async predicate until true; fail with `what` after `within` seconds
    (generous: a loaded machine is slow, and a condition met returns at once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def raw_get(
    url: str, path: str, *, headers: dict[str, str] | None = None, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a socket and send a GET; `rcvbuf` shrinks the receive buffer (a slow client)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return reader, writer


def reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection abruptly: RST, not FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
