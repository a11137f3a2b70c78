"""OpenTelemetry out: the log as GenAI spans, sent live or after the fact over OTLP/HTTP.

`map_events()` / `SpanMapper` is the mapping (a pure fold of events, with ids
derived from the log); `export_run()` sends one run (`fleet otel export`);
`LiveExporter` follows the log and sends as events arrive (`fleet serve
--otlp-endpoint`), keeping its position through a `PositionStore`.
"""

from __future__ import annotations

from ._batch import map_events
from ._export import (
    CONTENT_ENV,
    ENDPOINT_ENV,
    SDK_LOG,
    ExportSummary,
    SpanSender,
    content_from_env,
    export_run,
    resolve_endpoint,
    to_sdk_span,
)
from ._live import CheckpointPositions, LiveExporter, PositionStore, SavedPosition
from ._mapping import (
    DEFAULT_MAX_CONTENT_CHARS,
    SpanMapper,
    SpanRecord,
    span_id_of,
    trace_id_of,
)
from .errors import ExportFailed, OtelError

__all__ = [
    "CONTENT_ENV",
    "DEFAULT_MAX_CONTENT_CHARS",
    "ENDPOINT_ENV",
    "SDK_LOG",
    "CheckpointPositions",
    "ExportFailed",
    "ExportSummary",
    "LiveExporter",
    "OtelError",
    "PositionStore",
    "SavedPosition",
    "SpanMapper",
    "SpanRecord",
    "SpanSender",
    "content_from_env",
    "export_run",
    "map_events",
    "resolve_endpoint",
    "span_id_of",
    "to_sdk_span",
    "trace_id_of",
]
