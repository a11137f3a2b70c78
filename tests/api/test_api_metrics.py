"""`GET /metrics`: the server in Prometheus' text format, parsed by prometheus-client's own parser."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from events import AgentCreated, Meta, NewEvent, SQLiteEventStore

FIXTURES = Path(__file__).parents[1] / "hooks" / "fixtures" / "otlp-claude-code-2.1.197"


async def scrape(client: httpx.AsyncClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def test_metrics_count_events_agents_and_appends(
    client: httpx.AsyncClient, store: SQLiteEventStore
) -> None:
    before = await scrape(client)
    assert before["fleet_events_appended_total"][()] == 0
    for i in range(3):
        created = AgentCreated(
            agent_id=f"a{i}", name=f"a{i}", role="scout", model="claude-haiku-5-5"
        )
        await store.append(f"agent-a{i}", [NewEvent(created, Meta(agent_id=f"a{i}"))])
    await client.get("/v1/agents?min_position=3")
    after = await scrape(client)
    assert after["fleet_events_appended_total"][()] == 3
    assert after["fleet_event_append_seconds_count"][()] == 3
    assert after["fleet_event_append_seconds_sum"][()] > 0
    assert after["fleet_agents"][(("status", "created"),)] == 3
    assert after["fleet_agents"][(("status", "working"),)] == 0
    assert after["fleet_projection_position"][()] == 3
    assert after["fleet_projection_lag_events"][()] == 0
    assert after["fleet_sse_subscribers"][()] == 0
    assert after["fleet_sse_cut_offs_total"][()] == 0
    assert "fleet_otlp_export_position" not in after  # no live export configured


async def test_tokens_and_cost_by_model_include_ingested_claude_code_sessions(
    client: httpx.AsyncClient,
) -> None:
    for path in sorted((FIXTURES / "proto").glob("*-logs.pb")):
        response = await client.post(
            "/v1/otlp/v1/logs",
            content=path.read_bytes(),
            headers={"content-type": "application/x-protobuf"},
        )
        assert response.status_code == 200
    card = (await client.get("/v1/agents/ext-30006865-2829-403c-aa30-ad40fccfcdc9")).json()
    metrics = await scrape(client)
    model = "claude-sonnet-4-5"
    tokens = metrics["fleet_tokens_total"]
    for kind in ("input", "output", "cache_read", "cache_write"):
        assert tokens[(("model", model), ("type", kind))] == card["tokens"][kind]
    assert metrics["fleet_cost_usd_total"][(("model", model),)] == card["cost_usd"] > 0
