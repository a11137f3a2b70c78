"""The offline Messages-API simulator: a Starlette app on loopback that the real SDK talks to.

    async with Simulator() as sim:
        client = AsyncAnthropic(base_url=sim.base_url, api_key="sim-offline")
        sim.inject_faults(status=429, count=1, retry_after=0)   # its own control plane

It speaks the wire protocol of `POST /v1/messages` (streaming server-sent
events and plain JSON), `POST /v1/messages/count_tokens`, and the API's error
shapes, so the SDK's parsing, streaming and retries run for real. Its answers
are scripted per role (see `_simulator_policy.py` and `_simulator_roles.py`)
and are a pure function of the request. It is a simulator: nothing it says
comes from a model.

Token usage is an estimate, `ceil(chars / 4)` of each part's canonical JSON
(the tools, the system prompt, each message), and `count_tokens` returns the
same total. Prompt caching is simulated deterministically from the request's
`cache_control` breakpoints: everything up to the last breakpoint is cached
(written), and of that, the conversation before the previous user turn counts
as read from the cache, as it would be in an agent loop that moves its
breakpoint forward each turn. Prefixes under `MIN_CACHEABLE_TOKENS` are not
cached, as on the real API.

Notes (do not fix without reading this):
1. The server is started with uvicorn's `startup()` / `shutdown()` on a socket
   we bind ourselves, not `serve()`: `serve()` installs SIGINT/SIGTERM handlers,
   which an embedded server must not take from its host process, and a port
   already in use must raise `OSError` here, not `SystemExit` in a task.
2. `retry_after=0` sends `retry-after-ms: 1`: the SDK ignores a zero wait and
   falls back to its exponential backoff (half a second and more), which would
   slow every test that exercises a retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._models import ModelTable
from ..errors import ClientClosed
from ._policies import Policy, PolicyRegistry, Reply, respond

__all__ = [
    "CHARS_PER_TOKEN",
    "MIN_CACHEABLE_TOKENS",
    "Simulator",
    "SimulatorStats",
    "count_request_tokens",
    "estimate_tokens",
]

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
MIN_CACHEABLE_TOKENS = 1024
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    429: "Number of request tokens has exceeded your per-minute rate limit (simulated)",
    500: "Internal server error (simulated)",
    529: "Overloaded (simulated)",
}


def estimate_tokens(text: str) -> int:
    """The simulator's token estimate of `text`: one token per 4 characters, rounded up."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _parts(body: Mapping[str, Any]) -> list[tuple[int, Any]]:
    """(tokens, cache_control of its last breakpoint or None) of tools, system and each message."""
    parts: list[tuple[int, Any]] = []
    tools = body.get("tools") or []
    parts.append((estimate_tokens(_canonical(tools)) if tools else 0, _breakpoint(tools)))
    system = body.get("system") or ""
    parts.append((estimate_tokens(_canonical(system)) if system else 0, _breakpoint(system)))
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        parts.append((estimate_tokens(_canonical(content)), _breakpoint(content)))
    return parts


def _breakpoint(value: Any) -> Any:
    if isinstance(value, list):
        found = None
        for item in value:
            if isinstance(item, Mapping) and item.get("cache_control"):
                found = item["cache_control"]
        return found
    return None


def count_request_tokens(body: Mapping[str, Any]) -> int:
    """Input tokens of a request body, as `count_tokens` reports them (all cache buckets)."""
    return sum(tokens for tokens, _ in _parts(body))


def _input_usage(body: Mapping[str, Any]) -> dict[str, int]:
    parts = _parts(body)
    total = sum(tokens for tokens, _ in parts)
    marked = [i for i, (_, control) in enumerate(parts) if control]
    usage = {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    usage |= {"cache_creation_5m": 0, "cache_creation_1h": 0}
    if not marked:
        return usage
    last = marked[-1]
    cached = sum(tokens for tokens, _ in parts[: last + 1])
    if cached < MIN_CACHEABLE_TOKENS:
        return usage
    messages = len(parts) - 2
    read = sum(tokens for tokens, _ in parts[:messages]) if messages >= 3 else 0
    read = min(read, cached)
    if read < MIN_CACHEABLE_TOKENS:
        read = 0
    created = cached - read
    one_hour = isinstance(parts[last][1], Mapping) and parts[last][1].get("ttl") == "1h"
    usage.update(
        input_tokens=total - cached,
        cache_creation_input_tokens=created,
        cache_read_input_tokens=read,
        cache_creation_5m=0 if one_hour else created,
        cache_creation_1h=created if one_hour else 0,
    )
    return usage


@dataclass(slots=True)
class SimulatorStats:
    """What the simulator has served (for tests and benchmarks)."""

    requests: int = 0  # POST /v1/messages, faults included
    responses: int = 0  # successful messages
    faults: int = 0  # injected errors served
    count_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class _Fault:
    status: int
    error_type: str
    message: str
    retry_after: float | None


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def _error(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    kind = error_type or _ERROR_TYPES.get(status, "api_error")
    request_id = "req_sim_" + hashlib.sha256(f"{status}{message}".encode()).hexdigest()[:20]
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id},
        status_code=status,
        headers={"request-id": request_id, **(headers or {})},
    )


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _BadRequest(400, "messages: at least one message is required")
    pending: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise _BadRequest(400, f"messages.{index}.role: must be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise _BadRequest(
                400, f"messages.{index}.content: must be a string or a list of blocks"
            )
        blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
        if message["role"] == "user":
            answered = {str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"}
            unexpected = answered - pending
            if unexpected:
                raise _BadRequest(
                    400,
                    f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {', '.join(sorted(unexpected))}. "
                    "Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message.",
                )
            missing = pending - answered
            if missing:
                raise _BadRequest(
                    400,
                    f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(missing))}. Each `tool_use` block must "
                    "have a corresponding `tool_result` block in the next message.",
                )
            pending = set()
        else:
            if pending:
                raise _BadRequest(
                    400,
                    f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(sorted(pending))}.",
                )
            pending = {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"}
    if messages[0].get("role") != "user":
        raise _BadRequest(400, "messages.0.role: the first message must use the 'user' role")


class Simulator:
    """The embedded Messages-API simulator on loopback. An async context manager.

    Args:
        host, port: where to listen (default: 127.0.0.1 on a free port).
        models: which model names it accepts (404 `not_found_error` for others) and
            their context windows (400 "prompt is too long" above them).
        policies: the scripted roles (default `PolicyRegistry.default()`).
        latency_s: a pause before each answer, to make a demo look like a model.
        chunk_chars: size of the text and JSON deltas it streams.
        api_key: when set, the only key it accepts (401 otherwise); any key by default.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: ModelTable | None = None,
        policies: PolicyRegistry | None = None,
        latency_s: float = 0.0,
        chunk_chars: int = 48,
        api_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.models = models or ModelTable.default()
        self.policies = policies or PolicyRegistry.default()
        self.latency_s = latency_s
        self.chunk_chars = max(1, chunk_chars)
        self.api_key = api_key
        self.stats = SimulatorStats()
        self._faults: deque[_Fault] = deque()
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._state = "new"
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
            ]
        )

    # -- control plane ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL to give the SDK as `base_url`. Raises `ClientClosed` when not running."""
        if self._state != "running" or self._socket is None:
            raise ClientClosed("simulator (not running)")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def simulated(self) -> bool:
        """Always True: say so wherever its answers are shown."""
        return True

    def inject_faults(
        self,
        status: int = 529,
        count: int = 1,
        *,
        retry_after: float | None = 0.0,
        message: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Answer the next `count` message requests with an API error of `status`.

        `retry_after` (seconds) is sent as `retry-after` and `retry-after-ms`
        (None sends neither, leaving the SDK to its own backoff).
        """
        if count < 0 or status < 400:
            raise ValueError("inject_faults needs count >= 0 and an error status (>= 400)")
        kind = error_type or _ERROR_TYPES.get(status, "api_error")
        text = message or _ERROR_MESSAGES.get(status, f"simulated {kind}")
        self._faults.extend(_Fault(status, kind, text, retry_after) for _ in range(count))

    def clear_faults(self) -> None:
        """Forget the faults not served yet."""
        self._faults.clear()

    def register_policy(self, role: str, policy: Policy) -> None:
        """Play `role` with `policy` in this simulator."""
        self.policies.register(role, policy)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving. Raises `OSError` if the address is taken."""
        if self._state != "new":
            raise ClientClosed("simulator (already started or closed)")
        # proto=IPPROTO_TCP, or asyncio does not set TCP_NODELAY on accepted connections and
        # every response waits 40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(512)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        # An embedded server must not reconfigure the process's logging: uvicorn's
        # Config applies its dictConfig and log level, and `access_log=False` empties
        # the process-wide "uvicorn.access" logger, silencing the host app's own.
        access = logging.getLogger("uvicorn.access")
        saved = (list(access.handlers), access.propagate)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
            backlog=512,
        )
        access.handlers, access.propagate = saved
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        await server.on_tick(0)  # sets the default headers (date, server)
        self._server, self._socket, self._state = server, sock, "running"
        logger.debug("simulator listening on %s", self.base_url)

    async def aclose(self) -> None:
        """Stop serving; safe to call twice."""
        if self._state == "closed":
            return
        server, sock = self._server, self._socket
        self._state = "closed"
        if server is not None:
            server.force_exit = True  # do not wait for idle keep-alive connections
            await server.shutdown(sockets=[sock] if sock is not None else None)
        elif sock is not None:
            sock.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the API ------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response | None:
        key = request.headers.get("x-api-key") or request.headers.get(
            "authorization", ""
        ).removeprefix("Bearer ")
        if not key:
            return _error(401, "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            return _error(401, "invalid x-api-key")
        return None

    async def _body(self, request: Request, *, need_max_tokens: bool) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError as e:
            raise _BadRequest(400, f"the request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise _BadRequest(400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest(400, "model: Field required")
        if model not in self.models:
            raise _BadRequest(404, f"model: {model}")
        if need_max_tokens:
            max_tokens = body.get("max_tokens")
            if not isinstance(max_tokens, int) or max_tokens < 1:
                raise _BadRequest(400, "max_tokens: Field required (an integer >= 1)")
        _check_messages(body.get("messages"))
        limit = self.models.resolve(model).context_window
        tokens = count_request_tokens(body)
        if tokens > limit:
            raise _BadRequest(400, f"prompt is too long: {tokens} tokens > {limit} maximum")
        return body

    async def _count_tokens(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        self.stats.count_tokens += 1
        try:
            body = await self._body(request, need_max_tokens=False)
        except _BadRequest as e:
            return _error(e.status, e.message)
        return JSONResponse({"input_tokens": count_request_tokens(body)})

    async def _messages(self, request: Request) -> Response:
        self.stats.requests += 1
        if (denied := self._authorize(request)) is not None:
            return denied
        if self._faults:
            fault = self._faults.popleft()
            self.stats.faults += 1
            headers: dict[str, str] = {}
            if fault.retry_after is not None:
                headers["retry-after"] = str(math.ceil(fault.retry_after))
                headers["retry-after-ms"] = str(max(1, round(fault.retry_after * 1000)))
            return _error(fault.status, fault.message, error_type=fault.error_type, headers=headers)
        try:
            body = await self._body(request, need_max_tokens=True)
        except _BadRequest as e:
            return _error(e.status, e.message)
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        try:
            reply = respond(body, self.policies)
        except Exception as e:  # a bug in a policy: say which, and do not let the SDK retry it
            logger.exception("simulator policy failed")
            return _error(
                500,
                f"simulator policy failed: {type(e).__name__}: {e}",
                headers={"x-should-retry": "false"},
            )
        message = _message(body, reply)
        self.stats.responses += 1
        self.stats.output_tokens += message["usage"]["output_tokens"]
        headers = {"request-id": "req_sim_" + message["id"][8:28]}
        if body.get("stream"):
            return StreamingResponse(
                _events(message, self.chunk_chars),
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        return JSONResponse(message, headers=headers)


def _message(body: Mapping[str, Any], reply: Reply) -> dict[str, Any]:
    # The transport (stream or not) is not part of what is asked.
    digest = hashlib.sha256(
        _canonical({k: v for k, v in body.items() if k != "stream"}).encode()
    ).hexdigest()
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for index, call in enumerate(reply.calls):
        call_id = hashlib.sha256(f"{digest}:{index}".encode()).hexdigest()[:24]
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_sim_{call_id}",
                "name": call.name,
                "input": dict(call.input),
            }
        )
    stop_reason = reply.stop_reason
    output = sum(
        estimate_tokens(b["text"])
        if b["type"] == "text"
        else estimate_tokens(b["name"] + _canonical(b["input"]))
        for b in content
    )
    max_tokens = int(body.get("max_tokens") or 0)
    if max_tokens and output > max_tokens:
        text = reply.text[: max_tokens * CHARS_PER_TOKEN]
        content = [{"type": "text", "text": text}] if text else []
        output, stop_reason = max_tokens, "max_tokens"
    usage_in = _input_usage(body)
    return {
        "id": f"msg_sim_{digest[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage_in["input_tokens"],
            "cache_creation_input_tokens": usage_in["cache_creation_input_tokens"],
            "cache_read_input_tokens": usage_in["cache_read_input_tokens"],
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage_in["cache_creation_5m"],
                "ephemeral_1h_input_tokens": usage_in["cache_creation_1h"],
            },
            "output_tokens": max(output, 1),
            "service_tier": "standard",
        },
    }


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


def _chunks(text: str, size: int) -> Sequence[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


async def _events(message: Mapping[str, Any], size: int) -> AsyncIterator[bytes]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("ping", {"type": "ping"})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for piece in _chunks(block["text"], size):
                delta = {"type": "text_delta", "text": piece}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
        else:
            empty = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": empty},
            )
            for piece in _chunks(_canonical(block["input"]), size):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {
                "input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "output_tokens": usage["output_tokens"],
            },
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})
