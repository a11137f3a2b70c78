"""Hooks: lifecycle hook points, hook runners, and Claude Code ingest.

Every lifecycle point of every agent is a hook point with Claude Code's name
and payload fields. Hooks (in-process Python callables, shell commands, HTTP
URLs) observe or block; every invocation is returned as `events.HookInvoked`
data for the runtime to append. External agents' hook payloads are checked by
`parse_external()` and become `events.ExternalHookReceived` data; their own
OpenTelemetry (OTLP/HTTP) is decoded by `parse_otlp()` into
`events.TelemetryReceived` (and `ModelResponded` for each model call).

This package imports `events` only.
"""

from __future__ import annotations

from ._config import (
    CLAUDE_ONLY_POINTS,
    DEFAULT_TIMEOUT,
    DORMANT_POINTS,
    SETTINGS_FILES,
    HookGroup,
    HooksConfig,
    HookSpec,
    Matcher,
    default_timeout,
    find_settings,
    http_url_problem,
    load_project_settings,
    load_settings,
)
from ._dispatcher import DetachedSink, HookDispatcher
from ._ingest import DEFAULT_MAX_INGEST_BYTES, DEFAULT_SOURCE_APP, parse_external
from ._otlp import (
    DEFAULT_MAX_OTLP_BYTES,
    OTLP_JSON,
    OTLP_PROTOBUF,
    OTLP_SIGNALS,
    OtlpBatch,
    Signal,
    otlp_response,
    parse_otlp,
)
from ._output import (
    MAX_TEXT_CHARS,
    Decision,
    HookOutcome,
    HookOutput,
    HookSpecificOutput,
    Permission,
)
from ._points import (
    BLOCKING_POINTS,
    DOCUMENTED_EVENTS,
    IF_POINTS,
    MATCHER_FIELDS,
    PAYLOAD_MODELS,
    TOOL_POINTS,
    FleetUsage,
    HookPayload,
    HookPoint,
    NotificationPayload,
    PermissionRequestPayload,
    PostToolUseFailurePayload,
    PostToolUsePayload,
    PreCompactPayload,
    PreToolUsePayload,
    SessionEndPayload,
    SessionStartPayload,
    StopPayload,
    SubagentStartPayload,
    SubagentStopPayload,
    UserPromptSubmitPayload,
    build_payload,
    hook_point,
)
from ._processes import CONTAINED, command_argv, start_command, stop_command
from ._rules import PermissionRule
from ._runners import MAX_OUTPUT_BYTES, PythonHookFn
from .errors import (
    DispatcherClosed,
    HookConfigError,
    HookError,
    IngestError,
    IngestTooLarge,
    PayloadInvalid,
    TelemetryInvalid,
    TelemetryTooLarge,
    TelemetryUnsupported,
    UnknownHookPoint,
)

__all__ = [
    "BLOCKING_POINTS",
    "CLAUDE_ONLY_POINTS",
    "CONTAINED",
    "DEFAULT_MAX_INGEST_BYTES",
    "DEFAULT_MAX_OTLP_BYTES",
    "DEFAULT_SOURCE_APP",
    "DEFAULT_TIMEOUT",
    "DOCUMENTED_EVENTS",
    "DORMANT_POINTS",
    "IF_POINTS",
    "MATCHER_FIELDS",
    "MAX_OUTPUT_BYTES",
    "MAX_TEXT_CHARS",
    "OTLP_JSON",
    "OTLP_PROTOBUF",
    "OTLP_SIGNALS",
    "PAYLOAD_MODELS",
    "SETTINGS_FILES",
    "TOOL_POINTS",
    "Decision",
    "DetachedSink",
    "DispatcherClosed",
    "FleetUsage",
    "HookConfigError",
    "HookDispatcher",
    "HookError",
    "HookGroup",
    "HookOutcome",
    "HookOutput",
    "HookPayload",
    "HookPoint",
    "HookSpec",
    "HookSpecificOutput",
    "HooksConfig",
    "IngestError",
    "IngestTooLarge",
    "Matcher",
    "NotificationPayload",
    "OtlpBatch",
    "PayloadInvalid",
    "Permission",
    "PermissionRequestPayload",
    "PermissionRule",
    "PostToolUseFailurePayload",
    "PostToolUsePayload",
    "PreCompactPayload",
    "PreToolUsePayload",
    "PythonHookFn",
    "SessionEndPayload",
    "SessionStartPayload",
    "Signal",
    "StopPayload",
    "SubagentStartPayload",
    "SubagentStopPayload",
    "TelemetryInvalid",
    "TelemetryTooLarge",
    "TelemetryUnsupported",
    "UnknownHookPoint",
    "UserPromptSubmitPayload",
    "build_payload",
    "command_argv",
    "default_timeout",
    "find_settings",
    "hook_point",
    "http_url_problem",
    "load_project_settings",
    "load_settings",
    "otlp_response",
    "parse_external",
    "parse_otlp",
    "start_command",
    "stop_command",
]
