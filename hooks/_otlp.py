"""OTLP ingest: an external agent's own OpenTelemetry (Claude Code's) as events of its session.

`parse_otlp()` decodes one OTLP/HTTP request body (protobuf or JSON, one of
the three signals) with the official `opentelemetry-proto` messages and turns
every record that names a session (`session.id`) into event data for the
stream `session-<id>`:

- every log record, metric data point and span becomes a `TelemetryReceived`
  (kept raw: its name, attributes, value and the rest in `detail`);
- a `claude_code.api_request` log record also becomes a `ModelResponded` of the
  session's agent, with Claude Code's own model, token counts, cost and
  duration, so the agent's card, the fleet totals and the metrics count them
  like any model response.

`otlp_response()` encodes the OTLP answer (a partial success names what was
refused and why). Nothing here touches the store: the API appends.

Notes (do not fix without reading this):
1. Unknown fields are refused (400), in JSON and in protobuf alike, although
   the OTLP spec asks receivers to ignore them: fleet's rule is that input it
   does not understand changes nothing. A newer exporter whose messages carry
   fields this `opentelemetry-proto` does not know is told so by name.
2. OTLP/JSON writes trace and span ids as hex, not as protobuf JSON's base64:
   they are converted before the message is parsed.
3. Claude Code's metrics (`claude_code.token.usage`, `claude_code.cost.usage`)
   add up the same requests as its `api_request` events. Only the events are
   folded into tokens and cost (one per model call, exact); the metric points
   are kept raw, so nothing is counted twice.
4. A record without a session id, or with one that is not a fleet id, is not
   an error: the OTLP answer reports it as rejected and the rest is kept.
5. A JSON body is refused (400) for an integer Python will not convert
   (over 4,300 digits) and for nesting deeper than `MAX_JSON_DEPTH`, checked
   before the converters, which recurse: both were 500s.
6. Half a surrogate pair in a JSON string (`"\\ud83d"`: JavaScript cuts
   strings between an emoji's halves) is kept as U+FFFD (`events.valid_json`),
   as the hook ingest does: protobuf refused it, and with it every record of
   the request.
"""

from __future__ import annotations

import base64
import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from events import (
    DEFAULT_MAX_EVENT_BYTES,
    EventData,
    ModelResponded,
    TelemetryReceived,
    Usage,
    surrogate_escaped,
    valid_json,
)

from ._ingest import _SOURCE_APP, DEFAULT_SOURCE_APP
from .errors import TelemetryInvalid, TelemetryTooLarge, TelemetryUnsupported

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = [
    "DEFAULT_MAX_OTLP_BYTES",
    "OTLP_JSON",
    "OTLP_PROTOBUF",
    "OTLP_SIGNALS",
    "OtlpBatch",
    "Signal",
    "otlp_response",
    "parse_otlp",
]

Signal = Literal["logs", "metrics", "traces"]
OTLP_SIGNALS: tuple[Signal, ...] = ("logs", "metrics", "traces")
OTLP_PROTOBUF = "application/x-protobuf"
OTLP_JSON = "application/json"

DEFAULT_MAX_OTLP_BYTES = 4 * 1024 * 1024
"""The largest OTLP body accepted, in bytes after any gzip is undone."""

_MAX_RECORD_BYTES = DEFAULT_MAX_EVENT_BYTES // 2
_SESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
MAX_JSON_DEPTH = 64
"""The deepest nesting of objects and arrays an OTLP/JSON body may have (note 5)."""
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_API_REQUEST = "claude_code.api_request"


@cache
def _messages(signal: Signal) -> tuple[type[Message], type[Message]]:
    """The OTLP request and response messages of `signal`: (request, response).

    Imported on first use: the protobuf modules cost about a seventh of `import
    hooks`, which every fleet command pays, and only a server receiving OTLP needs them.
    """
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs

        return logs.ExportLogsServiceRequest, logs.ExportLogsServiceResponse
    if signal == "metrics":
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics

        return metrics.ExportMetricsServiceRequest, metrics.ExportMetricsServiceResponse
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as traces

    return traces.ExportTraceServiceRequest, traces.ExportTraceServiceResponse


_REJECTED_FIELD: dict[Signal, str] = {
    "logs": "rejected_log_records",
    "metrics": "rejected_data_points",
    "traces": "rejected_spans",
}


@dataclass(slots=True)
class OtlpBatch:
    """What one OTLP request holds for fleet: event data by session, in the order sent.

    `rejected` counts the records left out (no usable session id) and
    `reason` says why; `records` counts the records kept.
    """

    signal: Signal
    sessions: dict[str, list[EventData]] = field(default_factory=dict)
    records: int = 0
    rejected: int = 0
    reason: str = ""


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    coding = (encoding or "identity").strip().lower()
    if coding in ("identity", ""):
        if len(body) > limit:
            raise TelemetryTooLarge(len(body), limit)
        return body
    if coding != "gzip":
        raise TelemetryUnsupported(f"content encoding {coding!r} is not supported (gzip is)")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise TelemetryInvalid(f"the body is not valid gzip: {e}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        # Inflated only to limit + 1 bytes (a bomb is not undone whole): its size is unknown.
        raise TelemetryTooLarge(None, limit, what="the body, once gzip is undone,")
    if not inflater.eof:
        raise TelemetryInvalid("the gzip body is truncated")
    return out


def _hex_ids_to_base64(value: Any) -> Any:
    # Note 2: only the id fields, wherever they are nested.
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _ID_KEYS and isinstance(item, str) and item:
                try:
                    item = base64.b64encode(bytes.fromhex(item)).decode()
                except ValueError:
                    raise TelemetryInvalid(f"{key} {item[:40]!r} is not a hex id") from None
            out[key] = _hex_ids_to_base64(item)
        return out
    if isinstance(value, list):
        return [_hex_ids_to_base64(item) for item in value]
    return value


def _decode(signal: Signal, body: bytes, media_type: str) -> Message:
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    message = _messages(signal)[0]()
    if media_type == OTLP_PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError as e:
            raise TelemetryInvalid(f"not an OTLP {signal} protobuf message: {e}") from None
        _refuse_unknown_fields(message, message.DESCRIPTOR.name)
        return message
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise TelemetryInvalid(f"the JSON body is not UTF-8: {e.reason}") from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise TelemetryInvalid(f"not valid JSON: {e.msg} at {where}") from None
    except RecursionError:
        raise TelemetryInvalid("not valid JSON: nested too deeply") from None
    except ValueError as e:  # an integer of more digits than Python converts
        raise TelemetryInvalid(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise TelemetryInvalid(f"expected a JSON object (an OTLP {signal} request)")
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise TelemetryInvalid(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if surrogate_escaped(body):  # note 6; walked only when the text has one
        value = valid_json(value)
    try:
        json_format.ParseDict(_hex_ids_to_base64(value), message, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        raise TelemetryInvalid(f"not an OTLP {signal} request: {e}") from None
    return message


def _deeper_than(value: Any, limit: int) -> bool:
    """True if `value` nests objects and arrays more than `limit` deep (walked without
    recursion: the converters after it recurse, and ran out of stack at ~250)."""
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                todo.append((child, depth + 1))
    return False


def _refuse_unknown_fields(message: Message, path: str) -> None:
    # Note 1. Protobuf keeps fields it does not know instead of failing.
    from google.protobuf.unknown_fields import UnknownFieldSet

    unknown = UnknownFieldSet(message)
    if len(unknown):
        numbers = sorted({unknown[i].field_number for i in range(len(unknown))})
        raise TelemetryInvalid(f"unknown field number(s) {numbers} in {path}")
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        where = f"{path}.{descriptor.name}"
        if descriptor.is_repeated and not descriptor.message_type.GetOptions().map_entry:
            for i, item in enumerate(value):
                _refuse_unknown_fields(item, f"{where}[{i}]")
        elif not descriptor.is_repeated:
            _refuse_unknown_fields(value, where)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else None
    return getattr(value, kind)


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number >= 0 else 0.0


def _model_responded(session_id: str, attrs: Mapping[str, Any]) -> ModelResponded:
    """A Claude Code `api_request` as the model response it reports (Claude Code's numbers)."""
    return ModelResponded(
        agent_id=f"ext-{session_id}",
        message_id=str(attrs.get("request_id") or ""),
        model=str(attrs.get("model") or "unknown"),
        usage=Usage(
            input_tokens=_int(attrs.get("input_tokens")),
            output_tokens=_int(attrs.get("output_tokens")),
            cache_read_input_tokens=_int(attrs.get("cache_read_tokens")),
            cache_creation_input_tokens=_int(attrs.get("cache_creation_tokens")),
        ),
        cost_usd=_float(attrs.get("cost_usd")),
        duration_ms=_float(attrs.get("duration_ms")),
    )


class _Collector:
    """Sorts records into sessions while a request is walked."""

    def __init__(self, batch: OtlpBatch, source_app: str) -> None:
        self.batch = batch
        self.source_app = source_app

    def add(
        self,
        resource: Mapping[str, Any],
        attrs: dict[str, Any],
        *,
        signal: Literal["log", "metric", "span"],
        name: str,
        time_unix_nano: int,
        value: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        session = attrs.get("session.id") or resource.get("session.id")
        if not isinstance(session, str) or not _SESSION.fullmatch(session):
            self.batch.rejected += 1
            self.batch.reason = (
                "records without a session.id attribute (1-128 letters, digits or ._:@-) "
                "belong to no agent and were not kept"
            )
            return
        data = TelemetryReceived(
            source_app=self.source_app,
            session_id=session,
            signal=signal,
            name=name or signal,
            time_unix_nano=time_unix_nano,
            attributes=attrs,
            value=value if value is None or math.isfinite(value) else None,
            detail={**(detail or {}), "resource": dict(resource)},
        )
        size = len(data.model_dump_json())
        if size > _MAX_RECORD_BYTES:
            raise TelemetryTooLarge(size, _MAX_RECORD_BYTES, what="one record")
        events = self.batch.sessions.setdefault(session, [])
        events.append(data)
        if signal == "log" and name == _API_REQUEST:
            events.append(_model_responded(session, attrs))
        self.batch.records += 1


def _logs(request: Any, out: _Collector) -> None:
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attrs = _attributes(record.attributes)
                body = _value(record.body)
                name = record.event_name or (body if isinstance(body, str) else "")
                detail: dict[str, Any] = {"scope": scope_logs.scope.name}
                if record.severity_text:
                    detail["severity"] = record.severity_text
                if body is not None and body != name:
                    detail["body"] = body
                out.add(
                    resource, attrs, signal="log", name=name or str(attrs.get("event.name", "")),
                    time_unix_nano=record.time_unix_nano or record.observed_time_unix_nano,
                    detail=detail,
                )  # fmt: skip


def _points(metric: Any) -> tuple[str, Any, dict[str, Any]]:
    kind = metric.WhichOneof("data") or "none"
    data: Any = getattr(metric, kind) if kind != "none" else None
    detail: dict[str, Any] = {"kind": kind, "unit": metric.unit}
    if kind in ("sum", "histogram", "exponential_histogram"):
        detail["temporality"] = ["unspecified", "delta", "cumulative"][
            min(data.aggregation_temporality, 2)
        ]
    if kind == "sum":
        detail["monotonic"] = data.is_monotonic
    return kind, data, detail


def _metrics(request: Any, out: _Collector) -> None:
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind, data, detail = _points(metric)
                for point in data.data_points if data is not None else ():
                    value: float | None
                    extra: dict[str, Any] = {"start_time_unix_nano": point.start_time_unix_nano}
                    if kind in ("sum", "gauge"):
                        which = point.WhichOneof("value")
                        value = float(getattr(point, which)) if which else None
                    else:
                        value = point.sum if point.HasField("sum") or kind == "summary" else None
                        extra["count"] = point.count
                    out.add(
                        resource, _attributes(point.attributes), signal="metric",
                        name=metric.name, time_unix_nano=point.time_unix_nano, value=value,
                        detail={**detail, **extra},
                    )  # fmt: skip


def _spans(request: Any, out: _Collector) -> None:
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                detail = {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "kind": span.kind,
                    "start_time_unix_nano": span.start_time_unix_nano,
                    "end_time_unix_nano": span.end_time_unix_nano,
                    "status": {"code": span.status.code, "message": span.status.message},
                    "scope": scope_spans.scope.name,
                }
                out.add(
                    resource, _attributes(span.attributes), signal="span", name=span.name,
                    time_unix_nano=span.end_time_unix_nano, detail=detail,
                )  # fmt: skip


def parse_otlp(
    body: bytes,
    *,
    signal: str,
    content_type: str | None,
    content_encoding: str | None = None,
    source_app: str | None = None,
    max_bytes: int = DEFAULT_MAX_OTLP_BYTES,
) -> OtlpBatch:
    """Decode one OTLP/HTTP request body of `signal` ("logs", "metrics" or "traces").

    `content_type` must be `application/x-protobuf` or `application/json`;
    `content_encoding` may be gzip. `source_app` names the sender in the
    events (default "claude-code", as the hook ingest).

    Raises (nothing is kept when any is raised):
        TelemetryUnsupported: another content type or encoding, or an unknown signal.
        TelemetryTooLarge: the body (inflated) is over `max_bytes`, or one record is
            over half the store's event limit.
        TelemetryInvalid: not a message of that signal (naming what is wrong),
            unknown fields included (note 1), or an empty body.

    The argument is never mutated.
    """
    if signal not in _REJECTED_FIELD:
        raise TelemetryUnsupported(f"unknown OTLP signal {signal!r}; known: logs, metrics, traces")
    sig: Signal = signal
    media_type = _media_type(content_type)
    if media_type not in (OTLP_PROTOBUF, OTLP_JSON):
        got = media_type or "none"
        raise TelemetryUnsupported(
            f"content type {got!r} is not OTLP/HTTP; send {OTLP_PROTOBUF} or {OTLP_JSON}"
        )
    app = DEFAULT_SOURCE_APP if source_app is None else source_app
    if not _SOURCE_APP.fullmatch(app):
        raise TelemetryInvalid(
            f"source_app {app[:70]!r} must be 1 to 64 letters, digits or ._:@/- "
            "starting with a letter or digit"
        )
    raw = _inflate(bytes(body), content_encoding, max_bytes)
    if not raw.strip():
        raise TelemetryInvalid("the body is empty; expected an OTLP export request")
    request = _decode(sig, raw, media_type)
    batch = OtlpBatch(sig)
    collector = _Collector(batch, app)
    {"logs": _logs, "metrics": _metrics, "traces": _spans}[sig](request, collector)
    return batch


def otlp_response(
    signal: Signal, content_type: str | None, *, rejected: int = 0, message: str = ""
) -> tuple[bytes, str]:
    """The OTLP success answer for `signal` in the request's encoding: (body, media type).

    With `rejected` > 0 it is a partial success naming how many records were
    refused and why (`message`).
    """
    from google.protobuf import json_format

    response = _messages(signal)[1]()
    if rejected:
        partial = response.partial_success  # type: ignore[attr-defined]
        setattr(partial, _REJECTED_FIELD[signal], rejected)
        partial.error_message = message
    if _media_type(content_type) == OTLP_JSON:
        text = json_format.MessageToJson(response, indent=None)
        return text.encode(), OTLP_JSON
    return response.SerializeToString(), OTLP_PROTOBUF
