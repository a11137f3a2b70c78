"""Errors of the OpenTelemetry export. All descend from `FleetError` through `ApiError`.

FleetError
└── ApiError                    api/
    └── OtelError               api/otel/
        └── ExportFailed        an OTLP receiver did not take the spans, or a bad endpoint
"""

from __future__ import annotations

from ..errors import ApiError

__all__ = ["ExportFailed", "OtelError"]


class OtelError(ApiError):
    """Root of the errors raised by the OpenTelemetry export."""


class ExportFailed(OtelError):
    """Spans could not be sent: the receiver refused or was unreachable, or the endpoint is bad."""
