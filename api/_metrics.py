"""`GET /metrics`: the server in Prometheus' text format, through `prometheus-client`.

- `fleet_events_appended_total` (counter): events in the log (its head position)
- `fleet_event_append_seconds` (histogram): each append made by this server
  (one call, any number of events)
- `fleet_sse_subscribers`, `fleet_sse_streams_open` (gauges) and
  `fleet_sse_cut_offs_total` (counter): the live stream
- `fleet_projection_position` and `fleet_projection_lag_events` (gauges): how
  far the read models are, and how many events they have still to apply
- `fleet_agents{status}` (gauge): agents by status
- `fleet_tokens_total{model,type}` and `fleet_cost_usd_total{model}` (counters):
  tokens by model and bucket (input, output, cache_read, cache_write), and cost
- `fleet_otlp_export_position`, `fleet_otlp_export_lag_events` (gauges),
  `fleet_otlp_spans_sent_total`, `fleet_otlp_export_failures_total`
  (counters): the live OpenTelemetry export, when it is on

Everything but the append histogram is read when scraped, from the log, the
read models and the broadcaster, so it is right after a restart too.

Notes (do not fix without reading this):
1. Append latency is timed by wrapping `append` on the store instance the
   server (and its runtime) appends through: the store has no observer hook
   yet. `unwatch()` puts the method back. When the store protocol grows one,
   use it here instead.
2. Tokens and cost by model come from the agents read model, grouped by each
   agent's model (one model per agent).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from events import EventStore

from ._state import Services, services

__all__ = ["Metrics", "metrics_endpoint"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """What /metrics serves beyond the read-at-scrape values: the append timer (note 1)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.append_seconds = Histogram(
            "fleet_event_append_seconds",
            "Time of each append to the log made by this server",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._unwatch: Callable[[], None] | None = None

    @classmethod
    def watching(cls, store: EventStore) -> Metrics:
        """Metrics that time every `append` made through `store` (note 1)."""
        metrics = cls()
        original: Callable[..., Awaitable[Any]] = store.append
        observe = metrics.append_seconds.observe

        async def timed_append(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                observe(time.perf_counter() - start)

        store.append = timed_append  # type: ignore[method-assign]

        def unwatch() -> None:
            if store.append is timed_append:
                store.append = original  # type: ignore[method-assign,assignment]

        metrics._unwatch = unwatch
        return metrics

    def unwatch(self) -> None:
        """Stop timing appends; safe to call twice."""
        unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()


@dataclass(frozen=True, slots=True)
class _Snapshot(Collector):
    """The values read at scrape time, as metric families."""

    head: int
    app: Services

    def collect(self) -> Iterator[Metric]:
        app, head = self.app, self.head
        yield _counter("fleet_events_appended", "Events in the log (its head position)", head)
        b = app.broadcaster
        yield _gauge("fleet_sse_subscribers", "Live SSE subscribers", b.subscriber_count)
        yield _gauge("fleet_sse_streams_open", "Open SSE responses", b.open_streams)
        yield _counter("fleet_sse_cut_offs", "SSE clients cut off for falling behind", b.cut_offs)
        position = app.runner.position
        yield _gauge("fleet_projection_position", "Last position the read models applied", position)
        lag = max(0, head - position)
        yield _gauge(
            "fleet_projection_lag_events", "Events not yet applied by the read models", lag
        )
        yield from _agents(app)
        if app.otel is not None:
            otel = app.otel
            yield _gauge("fleet_otlp_export_position", "Last position sent as spans", otel.position)
            yield _gauge(
                "fleet_otlp_export_lag_events",
                "Events not yet sent as spans",
                max(0, head - otel.position),
            )
            yield _counter(
                "fleet_otlp_spans_sent", "Spans sent to the OTLP receiver", otel.spans_sent
            )
            yield _counter(
                "fleet_otlp_export_failures", "Failed sends to the OTLP receiver", otel.failures
            )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _agents(app: Services) -> Iterator[Metric]:
    fleet = app.runner.view("fleet")
    by_status = GaugeMetricFamily("fleet_agents", "Agents by status", labels=["status"])
    for status, count in fleet["agents"]["by_status"].items():
        by_status.add_metric([status], count)
    yield by_status
    tokens: dict[tuple[str, str], int] = {}
    cost: dict[str, float] = {}
    for card in app.runner.view("agents")["agents"]:  # note 2
        model = card["model"]
        for kind in ("input", "output", "cache_read", "cache_write"):
            tokens[model, kind] = tokens.get((model, kind), 0) + card["tokens"][kind]
        cost[model] = cost.get(model, 0.0) + card["cost_usd"]
    family = CounterMetricFamily(
        "fleet_tokens", "Tokens by model and bucket", labels=["model", "type"]
    )
    for (model, kind), count in sorted(tokens.items()):
        family.add_metric([model, kind], count)
    yield family
    dollars = CounterMetricFamily("fleet_cost_usd", "Cost in USD by model", labels=["model"])
    for model, value in sorted(cost.items()):
        dollars.add_metric([model], value)
    yield dollars


class _Timer(Collector):
    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        if self.metrics is not None:
            yield from self.metrics.append_seconds.collect()


async def metrics_endpoint(request: Request) -> Response:
    """`GET /metrics`: Prometheus text format (version 0.0.4)."""
    app = services(request)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await app.store.head(), app))
    registry.register(_Timer(app.metrics))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
