"""Spans out through the official OpenTelemetry SDK and its OTLP/HTTP (protobuf) exporter.

`to_sdk_span()` turns a `SpanRecord` into the SDK's `ReadableSpan` with the
ids the mapping derived (no tracer is involved: a tracer would pick its own
ids and times). `SpanSender` wraps `OTLPSpanExporter` and runs its blocking
export in a thread, so the event loop never waits on the network.
`export_run()` is `fleet otel export`: one run's spans, sent in batches.

Endpoints: a URL ending in `/v1/traces` is used as it is; any other is a base
URL (as `OTEL_EXPORTER_OTLP_ENDPOINT`) and gets `/v1/traces` appended.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, Self

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from events import EventStore, read_run
from hooks import http_url_problem

from ._batch import map_events
from ._mapping import DEFAULT_MAX_CONTENT_CHARS, SpanRecord
from .errors import ExportFailed

__all__ = [
    "CONTENT_ENV",
    "ENDPOINT_ENV",
    "SDK_LOG",
    "ExportSummary",
    "SpanSender",
    "content_from_env",
    "export_run",
    "resolve_endpoint",
    "to_sdk_span",
]

logger = logging.getLogger(__name__)

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""The standard variable naming the OTLP base URL; `--otlp-endpoint` wins over it."""
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The GenAI instrumentations' opt-in for content; `true` records it (truncated)."""

BATCH_SPANS = 512
IN_FLIGHT = 2
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_TRACES_PATH = "/v1/traces"
_KINDS = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT}


def _fleet_version() -> str:
    try:
        return version("fleet")
    except PackageNotFoundError:  # a checkout that is not installed
        return "0"


RESOURCE = Resource.create({"service.name": "fleet", "service.version": _fleet_version()})
SCOPE = InstrumentationScope("fleet.otel", _fleet_version())


class _SdkLog(logging.Filter):
    """On the SDK's exporter's logger: drops its lines in a `quieted()` block, where the
    caller says why a send failed itself (`fleet otel export`, in one line)."""

    def __init__(self) -> None:
        super().__init__()
        self.quiet = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.quiet

    @contextmanager
    def quieted(self, quiet: bool = True) -> Iterator[None]:
        """Drop the SDK's lines in the block when `quiet`."""
        before, self.quiet = self.quiet, quiet
        try:
            yield
        finally:
            self.quiet = before


SDK_LOG = _SdkLog()
"""The filter on the SDK's OTLP/HTTP span exporter's logger (its retries, its failures)."""
logging.getLogger(OTLPSpanExporter.__module__).addFilter(SDK_LOG)


class _Session(requests.Session):
    """The exporter's HTTP session (its public `session=`), noting why a request failed, per
    thread: `export()` returns only FAILURE, and the SDK says why in its log only when it
    will retry (not when its timeout leaves no time for one)."""

    def __init__(self) -> None:
        super().__init__()
        self._why: dict[int, str] = {}

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().request(method, url, *args, **kwargs)
        except Exception as e:
            self._why[threading.get_ident()] = _innermost(e)
            raise
        if response.status_code >= 400:
            self._why[threading.get_ident()] = f"HTTP {response.status_code} {response.reason}"
        return response

    def take(self) -> str | None:
        """Why the last request on this thread failed, forgotten (None: it did not)."""
        return self._why.pop(threading.get_ident(), None)


# requests wraps urllib3's error, which names the connection before the cause.
_CONNECTION = re.compile(r"^\w+\(host=[^)]*\): ")
# A session the SDK makes from a credential provider's entry point (these variables) is
# left to it: its requests' causes are then not known.
_CREDENTIAL_VARIABLES = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
)


def _innermost(error: BaseException) -> str:
    """The error a transport error wraps, without the connection's repr: "Failed to
    establish a new connection: [Errno 111] Connection refused"."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "reason", None)
        if not isinstance(inner, BaseException) and error.args:
            inner = error.args[0]
        if not isinstance(inner, BaseException):
            break
        error = inner
    return _CONNECTION.sub("", str(error)) or type(error).__name__


def resolve_endpoint(url: str) -> str:
    """The traces URL for `url`: kept when it ends in /v1/traces, else that is appended."""
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ExportFailed(f"the OTLP endpoint {url!r} is not an http:// or https:// URL")
    if (problem := http_url_problem(url)) is not None:
        raise ExportFailed(f"the OTLP endpoint is not usable: {problem}")
    return url if url.rstrip("/").endswith(_TRACES_PATH) else url.rstrip("/") + _TRACES_PATH


def content_from_env(env: Mapping[str, str] | None = None) -> bool:
    """True when `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` opts in to content."""
    value = (os.environ if env is None else env).get(CONTENT_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def _context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED)


def to_sdk_span(record: SpanRecord) -> ReadableSpan:
    """The SDK's `ReadableSpan` for `record`, with its derived ids and times."""
    parent = None if record.parent_id is None else _context(record.trace_id, record.parent_id)
    status = (
        Status(StatusCode.ERROR, record.status_message or None)
        if record.status == "error"
        else _UNSET
    )
    return ReadableSpan(
        name=record.name,
        context=_context(record.trace_id, record.span_id),
        parent=parent,
        resource=RESOURCE,
        attributes=record.attributes,
        events=[Event(name, attrs, timestamp) for name, timestamp, attrs in record.events],
        kind=_KINDS[record.kind],
        status=status,
        start_time=record.start_ns,
        end_time=record.end_ns,
        instrumentation_scope=SCOPE,
    )


class SpanSender:
    """The SDK's OTLP/HTTP protobuf exporter, its blocking calls run in a thread.

    An async context manager; `aclose()` shuts the exporter down (safe twice).
    """

    def __init__(self, endpoint: str, *, timeout_s: float = 10.0) -> None:
        self.endpoint = resolve_endpoint(endpoint)
        provided = any(os.environ.get(name) for name in _CREDENTIAL_VARIABLES)
        self._session = None if provided else _Session()
        self._exporter: OTLPSpanExporter | None = OTLPSpanExporter(
            endpoint=self.endpoint, timeout=timeout_s, session=self._session
        )
        self.sent = 0
        self.last_error: str | None = None
        """Why the last send failed: its request's error or HTTP status (None: not known)."""

    async def send(self, records: Sequence[SpanRecord]) -> bool:
        """Export `records` in one request; True when the receiver took them (else
        `last_error` says why, when it is known).

        The SDK's encoding and the post run in a thread. Raises `ExportFailed`
        after `aclose()`.
        """
        exporter = self._exporter
        if exporter is None:
            raise ExportFailed("the span sender is closed")

        session = self._session

        def export() -> tuple[SpanExportResult, str | None]:
            if session is not None:
                session.take()  # none left from an earlier send on this thread
            result = exporter.export([to_sdk_span(r) for r in records])
            return result, None if session is None else session.take()

        result, error = await asyncio.to_thread(export)
        if result is not SpanExportResult.SUCCESS:
            self.last_error = error
            logger.debug("export of %d spans to %s failed: %s", len(records), self.endpoint, error)
            return False
        self.sent += len(records)
        return True

    def failed(self, what: str) -> str:
        """`what` failed, and why when it is known: a message for a person."""
        return what if self.last_error is None else f"{what}: {self.last_error}"

    async def send_all(self, records: Sequence[SpanRecord]) -> bool:
        """Export `records` in batches, `IN_FLIGHT` at a time; True when all were taken.

        While one batch is on the wire (and the receiver decodes it) the next is
        encoded. Raises `ExportFailed` after `aclose()`.
        """
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(batch: Sequence[SpanRecord]) -> bool:
            async with gate:
                return await self.send(batch)

        batches = [records[i : i + BATCH_SPANS] for i in range(0, len(records), BATCH_SPANS)]
        results = await asyncio.gather(*(one(b) for b in batches))
        return all(results)

    async def aclose(self) -> None:
        """Shut the exporter down; safe to call twice."""
        exporter, self._exporter = self._exporter, None
        if exporter is not None:
            await asyncio.to_thread(exporter.shutdown)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What `export_run` sent: the run, its trace id (hex), spans and events read."""

    run_id: str
    trace_id: str
    spans: int
    events: int
    endpoint: str

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "trace_id": self.trace_id, "spans": self.spans,
                "events": self.events, "endpoint": self.endpoint}  # fmt: skip


async def export_run(
    store: EventStore,
    run_id: str,
    endpoint: str,
    *,
    content: bool = False,
    max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
    timeout_s: float = 10.0,
) -> ExportSummary:
    """Send run `run_id`'s spans to `endpoint`; what was sent.

    Raises `events.RunNotFound` for an unknown run and `ExportFailed` when the
    receiver does not take the spans (nothing is retried after `timeout_s`).
    """
    events = await read_run(store, run_id)
    records = map_events(events, content=content, max_content_chars=max_content_chars)
    async with SpanSender(endpoint, timeout_s=timeout_s) as sender:
        if not await sender.send_all(records):
            raise ExportFailed(
                sender.failed(f"the OTLP receiver at {sender.endpoint} did not take the spans")
            )
        target = sender.endpoint
    trace = records[0].trace_id if records else 0
    return ExportSummary(run_id, f"{trace:032x}", len(records), len(events), target)
