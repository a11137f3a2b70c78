"""The offline Messages-API simulator: a Starlette app on loopback that the real SDK talks to.

    async with Simulator() as sim:
        client = AsyncAnthropic(base_url=sim.base_url, api_key="sim-offline")
        sim.inject_faults(status=429, count=1, retry_after=0)   # its own control plane

It speaks the wire protocol of `POST /v1/messages` (streaming server-sent
events and plain JSON), `POST /v1/messages/count_tokens`, and the API's error
shapes, so the SDK's parsing, streaming and retries run for real. It checks
every request as the API does (key, model, message order, tool results,
context window) and then asks its responder for the answer. The default
responder plays the scripted role policies (`_policies.py`, `_roles.py`), a
pure function of the request; fleet's replay gives it one that serves a
recorded run's answers instead:

    async with Simulator(responder=my_responder) as sim:
        ...                # my_responder(body) -> a message dict, or an ErrorReply

It is a simulator: nothing it says comes from a model. Token usage is an
estimate (`_usage.py`).

Notes (do not fix without reading this):
1. The server is started with uvicorn's `startup()` / `shutdown()` on a socket
   we bind ourselves, not `serve()`: `serve()` installs SIGINT/SIGTERM handlers,
   which an embedded server must not take from its host process, and a port
   already in use must raise `OSError` here, not `SystemExit` in a task.
2. `retry_after=0` sends `retry-after-ms: 1`: the SDK ignores a zero wait and
   falls back to its exponential backoff (half a second and more), which would
   slow every test that exercises a retry.
3. Closing lets the answers in flight end before the server stops: their
   pause (`latency_s`) ends at once with a 503 (nobody waits for it: a host
   closes its simulator after its clients), and `aclose` waits a moment for
   them. Left to the end of the event loop instead, `asyncio.run` cancels
   them, and uvicorn logs each cancelled answer as "Exception in ASGI
   application" with its traceback: a Ctrl-C of `fleet run` printed pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, Self, cast

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._models import ModelTable, PriceTable
from ..errors import ClientClosed
from ._models_api import model_object, model_page
from ._policies import Policy, PolicyRegistry, PolicyResponder, cache_warming
from ._requests import Endpoint, ErrorReply, check_request
from ._usage import canonical, count_request_tokens

__all__ = ["ErrorReply", "Responder", "Simulator", "SimulatorStats"]

logger = logging.getLogger(__name__)

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
_CLOSING_WAIT_S = 2.0
"""How long closing waits for the answers in flight (note 3)."""


@dataclass(slots=True)
class SimulatorStats:
    """What the simulator has served (for tests and benchmarks)."""

    requests: int = 0  # POST /v1/messages, faults included
    responses: int = 0  # successful messages
    faults: int = 0  # injected errors served
    count_tokens: int = 0
    output_tokens: int = 0
    # `anthropic-beta` values seen on accepted requests, with how many requests sent each.
    betas: dict[str, int] = field(default_factory=dict)


class Responder(Protocol):
    """What answers the simulator's message requests; the scripted policies by default.

    It is awaited with the request body, already checked as the API checks it
    (a JSON object naming a known model, with `max_tokens`, messages in a valid
    order, within the model's context window), and returns the message the API
    would answer (`id`, `type`, `role`, `model`, `content`, `stop_reason`,
    `stop_sequence`, `usage`), which the simulator sends as JSON or streams, or
    an `ErrorReply`. An exception it raises is answered with a 500 that names
    it and tells the SDK not to retry. It must not mutate `body`.
    """

    async def __call__(self, body: dict[str, Any]) -> dict[str, Any] | ErrorReply: ...


StreamFault = Literal["overloaded", "max_tokens", "refusal", "pause_turn"]
STREAM_FAULTS: tuple[str, ...] = ("overloaded", "max_tokens", "refusal", "pause_turn")


@dataclass(frozen=True, slots=True)
class _Fault:
    status: int
    error_type: str
    message: str
    retry_after: float | None


def _error(reply: ErrorReply) -> JSONResponse:
    kind = reply.error_type or _ERROR_TYPES.get(reply.status, "api_error")
    digest = hashlib.sha256(f"{reply.status}{reply.message}".encode()).hexdigest()
    request_id = "req_sim_" + digest[:20]
    return JSONResponse(
        {
            "type": "error",
            "error": {"type": kind, "message": reply.message},
            "request_id": request_id,
        },
        status_code=reply.status,
        headers={"request-id": request_id, **reply.headers},
    )


class Simulator:
    """The embedded Messages-API simulator on loopback. An async context manager.

    Args:
        host, port: where to listen (default: 127.0.0.1 on a free port).
        models: which model names it accepts (404 `not_found_error` for others) and
            their context windows (400 "prompt is too long" above them).
        policies: the scripted roles (default `PolicyRegistry.default()`).
        responder: what answers instead of the scripted roles (see `Responder`).
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
        responder: Responder | None = None,
        latency_s: float = 0.0,
        chunk_chars: int = 48,
        api_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.models = models or ModelTable.default()
        self.policies = policies or PolicyRegistry.default()
        self.responder: Responder = responder or PolicyResponder(self.policies)
        self.latency_s = latency_s
        self.chunk_chars = max(1, chunk_chars)
        self.api_key = api_key
        self.stats = SimulatorStats()
        self._faults: deque[_Fault] = deque()
        self._stream_faults: deque[StreamFault] = deque()
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._state = "new"
        self._closing = asyncio.Event()
        self._answering: set[asyncio.Task[Any]] = set()  # requests to /v1/messages (note 3)
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
                Route("/v1/models/{model_id:path}", self._get_model, methods=["GET"]),
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
        mid_stream: StreamFault | None = None,
    ) -> None:
        """Answer the next `count` message requests with an API error of `status`.

        `retry_after` (seconds) is sent as `retry-after` and `retry-after-ms`
        (None sends neither, leaving the SDK to its own backoff). With
        `mid_stream`, the next `count` answers go wrong after they began, as the
        API's can: "overloaded" (an `event: error` with `overloaded_error`
        after the first block started), "max_tokens" (cut inside the first
        tool_use block's input), "refusal" (stop_reason `refusal`), or
        "pause_turn" (the turn paused after the text; it goes on when asked).
        """
        if mid_stream is not None:
            if mid_stream not in STREAM_FAULTS or count < 0:
                raise ValueError(f"mid_stream must be one of {STREAM_FAULTS}, count >= 0")
            self._stream_faults.extend([mid_stream] * count)
            return
        if count < 0 or status < 400:
            raise ValueError("inject_faults needs count >= 0 and an error status (>= 400)")
        kind = error_type or _ERROR_TYPES.get(status, "api_error")
        text = message or _ERROR_MESSAGES.get(status, f"simulated {kind}")
        self._faults.extend(_Fault(status, kind, text, retry_after) for _ in range(count))

    def clear_faults(self) -> None:
        """Forget the faults not served yet."""
        self._faults.clear()
        self._stream_faults.clear()

    def register_policy(self, role: str, policy: Policy) -> None:
        """Play `role` with `policy` in this simulator (unless it was given another responder)."""
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
        self._closing.set()  # note 3
        if self._answering:
            await asyncio.wait(set(self._answering), timeout=_CLOSING_WAIT_S)
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
            return _error(ErrorReply(401, "x-api-key header is required"))
        if self.api_key is not None and key != self.api_key:
            return _error(ErrorReply(401, "invalid x-api-key"))
        return None

    async def _body(self, request: Request, endpoint: Endpoint) -> dict[str, Any] | ErrorReply:
        try:
            body = json.loads(await request.body())
        except ValueError as e:
            return ErrorReply(400, f"the request body is not valid JSON: {e}")
        version = request.headers.get("anthropic-version")
        refused = check_request(body, self.models, endpoint=endpoint, version=version)
        if refused is not None:
            return refused
        for beta in request.headers.get("anthropic-beta", "").split(","):
            if beta.strip():
                self.stats.betas[beta.strip()] = self.stats.betas.get(beta.strip(), 0) + 1
        limit = self.models.resolve(body["model"]).context_window
        tokens = count_request_tokens(body)
        if tokens > limit:
            return ErrorReply(400, f"prompt is too long: {tokens} tokens > {limit} maximum")
        return cast(dict[str, Any], body)

    async def _count_tokens(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        self.stats.count_tokens += 1
        body = await self._body(request, "count_tokens")
        if isinstance(body, ErrorReply):
            return _error(body)
        return JSONResponse({"input_tokens": count_request_tokens(body)})

    async def _list_models(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        page = model_page(self.models, request.query_params)
        return _error(page) if isinstance(page, ErrorReply) else JSONResponse(page)

    async def _get_model(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        name = request.path_params["model_id"]
        if name not in self.models:
            return _error(ErrorReply(404, f"model: {name}"))
        prices = PriceTable.default(self.models)
        return JSONResponse(model_object(self.models.resolve(name), prices))

    async def _messages(self, request: Request) -> Response:
        task = asyncio.current_task()  # uvicorn's task for the request (note 3)
        if task is not None:
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)  # its response sent too
        return await self._answer(request)

    async def _answer(self, request: Request) -> Response:
        self.stats.requests += 1
        if (denied := self._authorize(request)) is not None:
            return denied
        if self._faults:
            return self._fault()
        body = await self._body(request, "messages")
        if isinstance(body, ErrorReply):
            return _error(body)
        if self.latency_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.latency_s):
                    await self._closing.wait()
        if self._closing.is_set():  # note 3
            headers = {"x-should-retry": "false"}
            return _error(ErrorReply(503, "the simulator is closing", "api_error", headers))
        try:
            answer = await self.responder(body) if body["max_tokens"] else cache_warming(body)
        except Exception as e:  # a bug in a policy: say which, and do not let the SDK retry it
            logger.exception("simulator policy failed")
            message = f"simulator policy failed: {type(e).__name__}: {e}"
            return _error(ErrorReply(500, message, headers={"x-should-retry": "false"}))
        if isinstance(answer, ErrorReply):
            return _error(answer)
        broken = None
        if self._stream_faults and body["max_tokens"]:
            broken = self._stream_faults.popleft()
            self.stats.faults += 1
            answer = _gone_wrong(answer, broken)
        self.stats.responses += 1
        self.stats.output_tokens += answer["usage"]["output_tokens"]
        digest = hashlib.sha256(str(answer["id"]).encode()).hexdigest()
        headers = {"request-id": "req_sim_" + digest[:20]}
        if body.get("stream"):
            return StreamingResponse(
                _events(answer, self.chunk_chars, overloaded=broken == "overloaded"),
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        content = [{k: v for k, v in b.items() if k != "_cut"} for b in answer["content"]]
        return JSONResponse({**answer, "content": content}, headers=headers)

    def _fault(self) -> Response:
        fault = self._faults.popleft()
        self.stats.faults += 1
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = str(math.ceil(fault.retry_after))
            headers["retry-after-ms"] = str(max(1, round(fault.retry_after * 1000)))
        return _error(ErrorReply(fault.status, fault.message, fault.error_type, headers))


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


def _chunks(text: str, size: int) -> Sequence[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _block_deltas(block: Mapping[str, Any], size: int) -> tuple[dict[str, Any], list[Any]]:
    """How a content block streams: its opening `content_block` and its deltas."""
    kind = block.get("type")
    if kind == "text":
        deltas = [{"type": "text_delta", "text": p} for p in _chunks(block["text"], size)]
        return {"type": "text", "text": ""}, deltas
    if kind == "tool_use":
        opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        pieces = _chunks(canonical(block.get("input") or {}), size)
        return opening, [{"type": "input_json_delta", "partial_json": p} for p in pieces]
    if kind == "thinking":
        deltas = [
            *({"type": "thinking_delta", "thinking": p} for p in _chunks(block["thinking"], size)),
            {"type": "signature_delta", "signature": block.get("signature", "")},
        ]
        return {"type": "thinking", "thinking": "", "signature": ""}, deltas
    return dict(block), []  # redacted thinking and other opaque blocks arrive whole


def _gone_wrong(answer: dict[str, Any], fault: StreamFault) -> dict[str, Any]:
    """`answer` as it comes out when `fault` strikes (see `Simulator.inject_faults`)."""
    content = list(answer["content"])
    if fault == "refusal":
        text = {"type": "text", "text": "I can't help with that request."}
        return {**answer, "content": [text], "stop_reason": "refusal"}
    if fault == "pause_turn":
        texts = [b for b in content if b.get("type") == "text"] or [{"type": "text", "text": "…"}]
        return {**answer, "content": texts[:1], "stop_reason": "pause_turn"}
    if fault == "max_tokens":
        for i, block in enumerate(content):
            if block.get("type") == "tool_use":
                cut = {**block, "_cut": True}
                return {**answer, "content": [*content[:i], cut], "stop_reason": "max_tokens"}
        return {**answer, "stop_reason": "max_tokens"}
    return answer


async def _events(
    message: Mapping[str, Any], size: int, *, overloaded: bool = False
) -> AsyncIterator[bytes]:
    """The message as the API's server-sent events (or until an `error` event)."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("ping", {"type": "ping"})
    for index, block in enumerate(message["content"]):
        opening, deltas = _block_deltas(block, size)
        if block.get("_cut"):  # max_tokens inside its input: half of the JSON, then the end
            deltas = deltas[: max(1, len(deltas) // 2)]
            if len(deltas) == 1 and deltas[0].get("partial_json"):
                piece = deltas[0]["partial_json"]
                deltas = [{**deltas[0], "partial_json": piece[: max(1, len(piece) // 2)]}]
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        if overloaded:
            error = {"type": "overloaded_error", "message": "Overloaded"}
            yield _sse("error", {"type": "error", "error": error})
            return
        for delta in deltas:
            yield _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    counted = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {**{k: usage[k] for k in counted}, "output_tokens": usage["output_tokens"]},
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})
