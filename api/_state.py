"""The app's typed state: what the lifespan opens, and how a route reaches it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from events import EventStore

from ._broadcast import Broadcaster
from ._config import ApiConfig
from ._polling import Renders
from .errors import HTTPProblem

if TYPE_CHECKING:
    from projections import ProjectionRunner
    from runtime import Runtime

    from ._metrics import Metrics
    from ._transcripts import SessionUsage
    from .otel import LiveExporter

__all__ = ["STATE_KEY", "ImportSlot", "Services", "StoreHealth", "services"]

STATE_KEY = "fleet"
"""The key of `Services` in the ASGI lifespan state."""


class ImportSlot:
    """One import at a time: an upload is checked and spooled, then written in one
    transaction that holds the log's write lock; a second one would only wait."""

    def __init__(self) -> None:
        self.busy = False

    def take(self) -> bool:
        """Take the slot if it is free (on the event loop: no await between test and set)."""
        if self.busy:
            return False
        self.busy = True
        return True

    def give_back(self) -> None:
        """Free the slot."""
        self.busy = False


class StoreHealth:
    """Whether the log can be written, as the last failed write and the last probe say.

    A write the log refuses (`StoreUnavailable`: disk full, I/O error) makes
    it degraded; `/healthz` then probes with a small write (a checkpoint row)
    at most once a second, and the first that lands makes it ok again.
    """

    def __init__(self) -> None:
        self.failure: str | None = None
        self.probed_at = 0.0

    def failed(self, reason: str) -> bool:
        """Note a refused write; True if the log was thought writable until now."""
        new = self.failure is None
        self.failure = reason
        return new

    def recovered(self) -> bool:
        """Note a write that landed; True if the log was degraded until now."""
        was = self.failure is not None
        self.failure = None
        return was


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a route needs, opened by the lifespan and closed by it (in reverse)."""

    config: ApiConfig
    store: EventStore
    runner: ProjectionRunner
    broadcaster: Broadcaster
    # The runtime (model client, hooks, Fleet) when the config asks for one.
    runtime: Runtime | None = None
    # The live OpenTelemetry export, when the config names an endpoint.
    otel: LiveExporter | None = None
    # What /metrics serves (the Prometheus registry and the append timer).
    metrics: Metrics | None = None
    # The views' last rendered bodies (`_polling.py`, note 3).
    renders: Renders = field(default_factory=Renders)
    # Tokens and cost of ingested Claude Code sessions, from their transcripts.
    session_usage: SessionUsage | None = None
    # The one import that may run at a time.
    imports: ImportSlot = field(default_factory=ImportSlot)
    # Whether the log can be written (disk full), for /healthz and the 503s.
    store_health: StoreHealth = field(default_factory=StoreHealth)
    # Set when the server shuts down: waiting long polls answer at once (`_polling.py`).
    closing: asyncio.Event = field(default_factory=asyncio.Event)


def services(conn: HTTPConnection) -> Services:
    """The running app's services. Raises `HTTPProblem` 503 outside the lifespan.

    Read from the ASGI lifespan state, else from the app (for transports that
    do not pass lifespan state, such as httpx's `ASGITransport`).
    """
    state = conn.scope.get("state") or {}
    found = state.get(STATE_KEY) or getattr(conn.scope.get("app"), "services", None)
    if not isinstance(found, Services):
        raise HTTPProblem(
            503, "Service unavailable", "the app is not started (its lifespan has not run)",
            slug="unavailable", headers={"Retry-After": "1"},
        )  # fmt: skip
    return found
