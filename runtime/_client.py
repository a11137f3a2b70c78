"""The model client: the `AsyncAnthropic` clients of a runtime, the streaming Messages API, costs.

    async with Simulator() as sim:
        async with ModelClient.from_env(simulator_base_url=sim.base_url) as client:
            reply = await client.respond(model="haiku", system=..., messages=..., tools=...)

With `ANTHROPIC_API_KEY` set, the client talks to Anthropic (`ANTHROPIC_BASE_URL`
honoured); without it, to the simulator whose URL it is given, with a dummy key.
The code path is the same: the official SDK, streaming
(`messages.with_streaming_response.create(stream=True)`, its events read by
`_message_stream.py`), the SDK's own retries.

Notes (do not fix without reading this):
1. Prompt caching: the system prompt and the last block of the last message
   carry `cache_control` (ephemeral, 5 minutes), as an agent loop wants: each
   turn reads the previous turn's prefix from the cache. The caller's messages
   are never mutated; the last message is copied.
2. The SDK retries 408/409/429/5xx (and 529) itself, honouring `retry-after`;
   only what is left after its retries reaches us, as `ModelCallFailed`.
3. The answer's events are read by `MessageStreamReader`, not by the SDK's
   `messages.stream()` accumulator, which cost 1.6 ms more CPU a request for
   the same dicts (`_message_stream.py`, note 1). The request, its headers,
   auth, retries and errors are still the SDK's.
4. One SDK client (one HTTP connection pool) for every 4 agents, not one for
   the runtime: the SDK's pool probes each idle connection on every request,
   so one pool for 1,000 agents cost about 2 ms of CPU a step (`_client_pools.py`).
5. The SDK clients of one model client share one SSL context (`_sdk_clients`):
   the SDK makes a context for every client it makes, loading the CA
   certificates each time, 25 to 37 ms of CPU a client; sharing one, a
   client costs 0.2 ms. The context is the one the SDK's HTTP library makes
   by default, made once; each client keeps its own connection pool.
6. The SDK's requests go over aiohttp (`anthropic.DefaultAioHttpClient`, the
   SDK's `aiohttp` extra) rather than its default httpx transport: the same
   SDK (its request building, auth, retries, errors, proxies from the
   environment), a cheaper HTTP client under it. Counted with callgrind on
   the simulator, a streamed request cost 8.0 million instructions through
   httpx and 5.5 million through aiohttp, and an agent's step 11.7 million
   against 9.2 (BENCHMARKS.md, ninth pass). The aiohttp session is made on the
   first request, on the loop that sends it, and closed with its client.
7. The SDK's own OpenTelemetry spans (anthropic 2.x: one span a call, on by
   default) are turned off for a client made while nothing can record them:
   no tracer provider set in this process and neither
   `ANTHROPIC_OPEN_TELEMETRY` nor `OTEL_PYTHON_TRACER_PROVIDER` in the
   environment (`_sdk_tracing`). The SDK builds every span's attributes
   before it asks whether the span records, 197,000 instructions a request
   on the simulator (3.5% of one, callgrind: BENCHMARKS.md, eleventh pass),
   for a span OpenTelemetry's default provider drops. Fleet's own spans
   (`api/otel`) are made from the log and do not need them. A provider set
   later (`trace.set_tracer_provider`) is seen by the clients made after it:
   clients are made as agents start their turns (`_client_pools.py`).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anthropic
from anthropic import AsyncAnthropic
from opentelemetry import trace

from events import Usage

from ._client_pools import ClientPools
from ._message_stream import MessageStreamReader, StreamError, StreamInvalid
from ._models import ModelInfo, ModelTable, PriceTable
from .errors import ClientClosed, ModelCallFailed, ModelError

__all__ = [
    "SIMULATOR_API_KEY",
    "ModelClient",
    "ModelReply",
    "blocks_to_dicts",
    "usage_from_dict",
]

SIMULATOR_API_KEY = "sim-offline"
"""The dummy key given to the SDK when it talks to the simulator."""

_EPHEMERAL = {"type": "ephemeral"}

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelReply:
    """One answer of the model: content blocks as plain dicts, usage, cost and timing."""

    message_id: str
    model: str
    stop_reason: str | None
    content: list[dict[str, Any]]
    usage: Usage
    cost_usd: float
    duration_ms: float
    simulated: bool = False
    raw_usage: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The text blocks, joined."""
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text").strip()

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        """The tool_use blocks, in order."""
        return [b for b in self.content if b.get("type") == "tool_use"]


def usage_from_dict(usage: Mapping[str, Any]) -> Usage:
    """A `usage` object as JSON data (a streamed message's, Claude Code's) as fleet's
    `events.Usage` (cache buckets apart, None as 0)."""
    split = usage.get("cache_creation") or {}
    return Usage(
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=usage.get("output_tokens") or 0,
        cache_creation_input_tokens=usage.get("cache_creation_input_tokens") or 0,
        cache_read_input_tokens=usage.get("cache_read_input_tokens") or 0,
        cache_creation_5m_input_tokens=split.get("ephemeral_5m_input_tokens") or 0,
        cache_creation_1h_input_tokens=split.get("ephemeral_1h_input_tokens") or 0,
    )


def _sdk_clients(**options: Any) -> Callable[[], AsyncAnthropic]:
    """Makes SDK clients like `AsyncAnthropic(**options)` over aiohttp (note 6), all with one
    SSL context (note 5)."""
    context = _default_ssl_context()

    def make() -> AsyncAnthropic:
        http = anthropic.DefaultAioHttpClient(timeout=options["timeout"], verify=context)
        return AsyncAnthropic(**options, **_sdk_tracing(), http_client=http)

    return make


_TRACING_OPTION = "open_telemetry" in inspect.signature(AsyncAnthropic.__init__).parameters
"""Whether this SDK has spans of its own to turn off (anthropic 2.x; not 0.x)."""


def _sdk_tracing() -> dict[str, Any]:
    """The SDK's tracing option for a client made now (note 7): off while nothing can
    record its spans, else left to the SDK (its default and environment variables)."""
    if (
        _TRACING_OPTION
        and "ANTHROPIC_OPEN_TELEMETRY" not in os.environ
        and "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
        and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    ):
        return {"open_telemetry": False}
    return {}


def _default_ssl_context() -> ssl.SSLContext:
    """The SSL context the SDK's HTTP library makes for a client by default (note 5)."""
    try:  # the SDK's own fork of httpx since anthropic 0.8x; httpx before
        http: Any = importlib.import_module("httpx2")
    except ImportError:
        http = importlib.import_module("httpx")
    context: ssl.SSLContext = http.create_ssl_context()
    return context


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def blocks_to_dicts(blocks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A message's content blocks as the dicts a later request sends back (no None fields)."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            out.append({"type": "text", "text": block["text"]})
        elif kind == "tool_use":
            out.append(
                {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": dict(block.get("input") or {}),
                }
            )
        elif kind == "thinking":
            out.append(
                {"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]}
            )
        else:
            out.append(_without_none(dict(block)))
    return out


def _with_cache_control(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`messages` with a cache breakpoint on the last block of the last message (a copy)."""
    if not messages:
        return list(messages)
    *head, last = messages
    content = last.get("content")
    if isinstance(content, str):
        blocks: list[Any] = [{"type": "text", "text": content}]
    else:
        blocks = [dict(b) if isinstance(b, Mapping) else b for b in content or []]
    if (
        blocks
        and isinstance(blocks[-1], dict)
        and blocks[-1].get("type") in ("text", "tool_result", "image", "document")
    ):
        blocks[-1] = {**blocks[-1], "cache_control": _EPHEMERAL}
    return [*head, {**last, "content": blocks}]


_RETRIED_MID_STREAM = frozenset({"overloaded_error", "api_error", "rate_limit_error"})
"""Errors an `event: error` may carry that are worth the turn again (the API's transient ones)."""


def _error_type(e: anthropic.APIStatusError) -> str:
    body = e.body
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping) and isinstance(err.get("type"), str):
            return str(err["type"])
    return type(e).__name__


def _error_message(e: anthropic.APIStatusError) -> str:
    body = e.body
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping) and isinstance(err.get("message"), str):
            return str(err["message"])
    return str(e)


class ModelClient:
    """The Messages API behind `AsyncAnthropic` clients (note 4); an async context manager.

    Args:
        anthropic_client: the SDK client (owned: closed by `aclose()`).
        simulated: True when it talks to the offline simulator.
        models, prices: the model and price tables (default: the built-in ones).
        make_client: makes another SDK client like `anthropic_client`, for
            agents beyond the first few (note 4; None: every request uses
            `anthropic_client`). `from_env` gives one.
    """

    def __init__(
        self,
        anthropic_client: AsyncAnthropic,
        *,
        simulated: bool,
        models: ModelTable | None = None,
        prices: PriceTable | None = None,
        make_client: Callable[[], AsyncAnthropic] | None = None,
    ) -> None:
        self._client = anthropic_client
        self._pools = ClientPools(anthropic_client, make_client)
        self.simulated = simulated
        self.models = models or ModelTable.default()
        self.prices = prices or PriceTable.default(self.models)
        self._closed = False

    @classmethod
    def from_env(
        cls,
        *,
        simulator_base_url: str | None = None,
        env: Mapping[str, str] | None = None,
        max_retries: int = 2,
        timeout: float = 600.0,
        models: ModelTable | None = None,
        prices: PriceTable | None = None,
        models_file: str | Path | None = None,
    ) -> ModelClient:
        """Anthropic when `ANTHROPIC_API_KEY` is set, else the simulator at `simulator_base_url`.

        `models_file` (or `FLEET_MODELS_FILE`) is a user file that adds or overrides
        models and prices (see `_models.py`). Raises `ModelError` when there is
        neither a key nor a simulator, `ModelTableInvalid` for a bad file.
        """
        environ = os.environ if env is None else env
        models = models or ModelTable.default()
        prices = prices or PriceTable.default(models)
        file = models_file or environ.get("FLEET_MODELS_FILE") or None
        if file:
            models = models.with_file(file)
            prices = prices.with_models(models).with_file(file)
        key = environ.get("ANTHROPIC_API_KEY") or None
        if key:
            base_url = environ.get("ANTHROPIC_BASE_URL") or None
            make = _sdk_clients(
                api_key=key, base_url=base_url, max_retries=max_retries, timeout=timeout
            )
            return cls(make(), simulated=False, models=models, prices=prices, make_client=make)
        if simulator_base_url is None:
            raise ModelError(
                "no ANTHROPIC_API_KEY is set and no simulator was given: set the key, or start "
                "a Simulator and pass simulator_base_url=sim.base_url"
            )
        make = _sdk_clients(
            api_key=SIMULATOR_API_KEY,
            base_url=simulator_base_url,
            max_retries=max_retries,
            timeout=timeout,
        )
        return cls(make(), simulated=True, models=models, prices=prices, make_client=make)

    @property
    def base_url(self) -> str:
        """Where requests go."""
        return str(self._client.base_url).rstrip("/")

    def resolve(self, model: str) -> ModelInfo:
        """The model `model` names, with a price in effect today. Raises `UnknownModel`."""
        info = self.models.resolve(model)
        self.prices.entry(info.id)
        return info

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("model client")

    async def respond(
        self,
        *,
        model: str,
        system: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        max_tokens: int = 8192,
        cache: bool = True,
        agent: str | None = None,
    ) -> ModelReply:
        """One streamed request: the final message, its usage and cost. `messages` is not mutated.

        `agent` (the id of the agent asking) keeps an agent's requests on one
        SDK client of a few agents' (note 4).

        Raises `UnknownModel` before any call, `ModelCallFailed` when the API
        answers an error after the SDK's retries or cannot be reached.
        """
        self._check_open()
        info = self.resolve(model)
        system_param: Any = (
            [{"type": "text", "text": system, "cache_control": _EPHEMERAL}]
            if cache and system
            else system
        )
        params: dict[str, Any] = {
            "model": info.id,
            "max_tokens": min(max_tokens, info.max_output),
            "messages": _with_cache_control(messages) if cache else list(messages),
        }
        if system_param:
            params["system"] = system_param
        if tools:
            params["tools"] = list(tools)
        started = time.perf_counter()
        retries = 0
        while True:
            try:
                try:
                    message = await self._stream(self._pools.client_for(agent), params)
                finally:
                    self._pools.done(agent)
                break
            except (anthropic.APIStatusError, StreamError) as e:
                if isinstance(e, StreamError):  # the HTTP status was 200: the stream had begun
                    status, kind, text = 200, e.type, e.message
                else:
                    status, kind, text = e.status_code, _error_type(e), _error_message(e)
                # An `event: error` after the stream began: the SDK does not retry it,
                # since the response had started. Try the turn again.
                transient = status < 400 and kind in _RETRIED_MID_STREAM
                if transient and retries < self._client.max_retries:
                    retries += 1
                    logger.debug("%s mid-stream: retry %d", kind, retries)
                    await asyncio.sleep(0.2 * retries)
                    continue
                raise ModelCallFailed(info.id, status, kind, text) from e
            except anthropic.APITimeoutError as e:
                raise ModelCallFailed(info.id, None, "timeout", str(e)) from e
            except anthropic.APIConnectionError as e:
                raise ModelCallFailed(
                    info.id, None, "connection_error", f"{e} ({self.base_url})"
                ) from e
            except StreamInvalid as e:
                raise ModelCallFailed(info.id, 200, "invalid_stream", str(e)) from e
        duration_ms = (time.perf_counter() - started) * 1000
        usage = usage_from_dict(message["usage"])
        cost = self.prices.cost(info.id, usage, datetime.now(UTC).date())
        return ModelReply(
            message_id=message["id"],
            model=info.id,
            stop_reason=message.get("stop_reason"),
            content=blocks_to_dicts(message["content"]),
            usage=usage,
            cost_usd=cost,
            duration_ms=duration_ms,
            simulated=self.simulated,
        )

    @staticmethod
    async def _stream(sdk: AsyncAnthropic, params: Mapping[str, Any]) -> dict[str, Any]:
        """One streamed request through the SDK, its events read by `MessageStreamReader`."""
        reader = MessageStreamReader()
        async with sdk.messages.with_streaming_response.create(**params, stream=True) as response:
            async for chunk in response.iter_bytes():
                reader.feed(chunk)
        return reader.message()

    def release(self, agent: str) -> None:
        """`agent` makes no request for now (its turn ended): its place on an SDK client goes
        to the next agent (`_client_pools.py`, note 3). It may ask again: it gets a place anew."""
        self._pools.let_go(agent)

    async def count_tokens(
        self,
        *,
        model: str,
        system: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
    ) -> int:
        """Input tokens the request would use (`POST /v1/messages/count_tokens`)."""
        self._check_open()
        info = self.resolve(model)
        params: dict[str, Any] = {"model": info.id, "messages": list(messages)}
        if system:
            params["system"] = system
        if tools:
            params["tools"] = list(tools)
        try:
            result = await self._client.messages.count_tokens(**params)
        except anthropic.APIStatusError as e:
            raise ModelCallFailed(info.id, e.status_code, _error_type(e), _error_message(e)) from e
        except anthropic.APIConnectionError as e:
            raise ModelCallFailed(info.id, None, "connection_error", str(e)) from e
        return int(result.input_tokens)

    async def aclose(self) -> None:
        """Close the SDK client; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self._pools.aclose()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
