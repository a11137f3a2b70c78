"""The API's configuration: one frozen pydantic model, built explicitly or from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hooks import http_url_problem
from projections import DEFAULT_STALE_AFTER_S

__all__ = ["DEFAULT_DB", "ApiConfig"]

DEFAULT_DB = Path(".fleet") / "fleet.db"


class ApiConfig(BaseModel):
    """Everything `create_app()` needs; every field has a sensible default.

    `token` is the bearer token every request must carry (None: no auth, which
    `serve()` allows on loopback only). The `sse_*` fields bound the live event
    stream: see `api/_broadcast.py`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    db: Path | str = Field(
        default=DEFAULT_DB,
        description="the log: a SQLite file, or a URL (postgresql://user@host/db, FLEET_DB)",
    )
    token: SecretStr | None = Field(default=None, description="bearer token; None disables auth")
    runtime: bool = Field(
        default=True,
        description="open the runtime (model client, hooks, Fleet) so agents can be commanded",
    )
    drive_agents: bool = Field(
        default=True,
        description="drive the agents commanded through this server (each under its lease); "
        "False: only append, `fleet worker` processes drive them",
    )
    worker: bool = Field(
        default=False,
        description="also take over agents no live process drives, as `fleet worker` does",
    )
    workspace: Path = Field(
        default=Path("."), description="where agents created over HTTP work (FLEET_WORKSPACE)"
    )
    allow_hosts: tuple[str, ...] = Field(
        default=(),
        description="names accepted in the Host header besides the server's own address "
        "(FLEET_ALLOW_HOSTS, comma-separated); see api/_guard.py",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest request body accepted (413 beyond)"
    )
    max_import_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="largest run export accepted by POST /v1/runs/import (413 beyond)",
    )
    import_key: SecretStr | None = Field(
        default=None,
        description="when set, POST /v1/runs/import takes only exports signed with this key "
        "(HMAC-SHA256, `fleet export --sign`); `fleet serve --verify-imports` sets it from "
        "FLEET_EXPORT_KEY",
    )
    max_otlp_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="largest OTLP request accepted by POST /v1/otlp/v1/* (413 beyond)",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="send the log live as OpenTelemetry spans to this OTLP/HTTP URL "
        "(OTEL_EXPORTER_OTLP_ENDPOINT); None: no live export",
    )
    otlp_content: bool = Field(
        default=False,
        description="include content (prompts, output, tool input/results) in the spans, "
        "truncated (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)",
    )
    page_limit: int = Field(
        default=100, ge=1, le=1000, description="default page size of GET /v1/events"
    )
    page_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        description="a page of GET /v1/events ends once it holds this many bytes of events "
        "(`next` goes on from there): 1,000 events of up to 1 MiB each would be a gigabyte",
    )
    stale_after_s: float = Field(
        default=DEFAULT_STALE_AFTER_S, gt=0,
        description="an external session working with no hook for this long, whose process "
        "cannot be looked at, is answered \"stale\" now (FLEET_STALE_AFTER, seconds; "
        "projections/_liveness.py)",
    )  # fmt: skip
    wait_timeout_s: float = Field(
        default=5.0, gt=0, description="how long `?min_position=` waits for the projections"
    )
    store_poll_s: float = Field(
        default=0.2, gt=0, description="how often the log is polled for other processes' appends"
    )
    sse_ping_s: float = Field(
        default=15.0, gt=0, description="heartbeat interval of the event stream"
    )
    sse_queue: int = Field(
        default=1024, ge=1, description="how many events a live stream may lag before it is cut off"
    )
    sse_recent: int = Field(
        default=4096,
        ge=16,
        description="recent events kept in memory so reconnects resume without a read",
    )
    sse_recent_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        description="at most this many bytes of recent events are kept in memory",
    )
    sse_lag_bytes: int = Field(
        default=1024 * 1024,
        ge=64 * 1024,
        description="a stream whose client stopped reading is cut off (its connection aborted) "
        "once this many bytes wait for it",
    )
    sse_buffer_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024 * 1024,
        description="the most all streams whose clients stopped reading may hold unwritten; "
        "past it the largest are aborted",
    )
    sse_flush_s: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="the longest pause between wake-ups of the live streams (under load)",
    )
    sse_wakeups_per_s: float = Field(
        default=10_000,
        gt=0,
        description="wake-ups of live streams per second to stay under (sets the pause)",
    )
    sse_send_timeout_s: float = Field(
        default=30.0, gt=0, description="a stream whose socket accepts nothing this long is aborted"
    )
    sse_retry_ms: int = Field(
        default=1000, ge=0, description="the reconnect delay told to EventSource"
    )
    sse_max_streams: int = Field(
        default=500,
        ge=1,
        description="event streams open at once; one more is 503 with Retry-After (each may "
        "hold a catch-up page of up to 1 MiB while it sends it)",
    )

    @field_validator("db", mode="before")
    @classmethod
    def _path_or_url(cls, value: object) -> object:
        # A URL (postgresql://...) stays the text given; anything else is a file's path.
        if isinstance(value, str) and "://" not in value:
            return Path(value)
        return value

    @field_validator("allow_hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            bracketed = name.startswith("[") and name.endswith("]")  # an IPv6 address
            bad = "/@?#*" if bracketed else "/:@?#*"
            if not name.strip("[]") or any(c.isspace() or c in bad for c in name):
                raise ValueError(f"{name!r} is not a host name (no port, no scheme, no *)")
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value()
            if any(c.isspace() for c in text) or not text.isprintable():
                raise ValueError("the token must be printable and contain no whitespace")
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _otlp_url(cls, value: str | None) -> str | None:
        # Refused at start, not retried at every batch of spans the server makes.
        if value is not None and (problem := http_url_problem(value.strip())) is not None:
            raise ValueError(problem)
        return value

    @field_validator("import_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("a signing key needs at least 16 bytes (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def token_value(self) -> str | None:
        """The token as plain text (None when auth is off)."""
        return None if self.token is None else self.token.get_secret_value()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """A config from `FLEET_DB`, `FLEET_TOKEN`, `FLEET_WORKSPACE`, `FLEET_ALLOW_HOSTS`,
        `FLEET_STALE_AFTER`,
        `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`,
        then `overrides`.

        Overrides that are None are ignored.

        `env` defaults to `os.environ`; it is only read.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if env.get("FLEET_DB"):
            values["db"] = env["FLEET_DB"]
        if env.get("FLEET_TOKEN"):
            values["token"] = env["FLEET_TOKEN"]
        if env.get("FLEET_WORKSPACE"):
            values["workspace"] = env["FLEET_WORKSPACE"]
        if env.get("FLEET_STALE_AFTER"):
            values["stale_after_s"] = env["FLEET_STALE_AFTER"]  # checked as a number > 0
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            values["otlp_endpoint"] = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        capture = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
        if capture.strip().lower() in ("1", "true", "yes", "on"):
            values["otlp_content"] = True
        if env.get("FLEET_ALLOW_HOSTS"):
            values["allow_hosts"] = tuple(
                name.strip() for name in env["FLEET_ALLOW_HOSTS"].split(",") if name.strip()
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
