"""The OpenAPI document describes every route, and requests generated from it never get a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from apitest_support import seed
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from starlette.routing import Mount, Route

from api import ApiConfig, FleetApp, create_app
from events import SQLiteEventStore
from runtime import prepare_workspace

# A run export is JSON Lines: generated bodies (binary strings) are sent as their bytes.
schemathesis.serializer.alias("application/x-ndjson", "application/octet-stream")

EXAMPLES = 15
"""Examples per operation and mode: enough to hit every parameter, fast enough for the suite."""


def _routes(app: FleetApp) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Route) and route.name != "docs":  # a page, like the dashboard
                for method in route.methods or ():
                    if method != "HEAD":
                        found.add((method, prefix + route.path))
            elif isinstance(route, Mount) and route.path:
                walk(route.routes, prefix + route.path)

    walk(app.routes, "")
    return found


async def test_document_is_openapi_31_and_lists_every_route(
    app: FleetApp, client: httpx.AsyncClient
) -> None:
    response = await client.get("/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert documented == _routes(app)


async def test_every_reference_resolves(client: httpx.AsyncClient) -> None:
    document = (await client.get("/v1/openapi.json")).json()
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas


async def test_every_operation_documents_its_errors_as_problems(client: httpx.AsyncClient) -> None:
    document = (await client.get("/v1/openapi.json")).json()
    for item in document["paths"].values():
        for operation in item.values():
            assert "401" in operation["responses"]
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"]


@pytest.fixture
async def seeded(tmp_path: Path) -> ApiConfig:
    """A config on a log with two runs in it, and a sample workspace for the agents it creates."""
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await seed(store, run_id="r1")
        await seed(store, run_id="r2")
    workspace = await prepare_workspace(tmp_path / "repo")
    return ApiConfig(
        db=tmp_path / "fleet.db", store_poll_s=0.05, sse_ping_s=0.2, workspace=workspace
    )


@pytest.fixture
def api_schema(seeded: ApiConfig) -> Iterator[Any]:
    """The app's own document, loaded by schemathesis from the ASGI app (lifespan included)."""
    app = create_app(seeded)
    try:
        yield schemathesis.openapi.from_asgi("/v1/openapi.json", app)
    finally:
        shutdown_lifespans()  # closes the app's store, runner and broadcaster


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_never_get_a_server_error(api_schema: Any, mode: GenerationMode) -> None:
    """Valid and invalid requests for every operation: 2xx or a clear 4xx, never a 5xx."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples on every run: no flaky suite
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            wait = (case.query or {}).get("wait")
            if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0.05:
                case.query["wait"] = 0.05  # a long poll would outlast the read timeout below
            # A stream never ends by itself: keep what arrived within the read timeout.
            # Anything else gets time to answer on a busy machine (starting a run does work).
            timeout = 0.5 if case.operation.path.endswith("/stream") else 15
            case.call_and_validate(checks=[not_a_server_error], timeout=timeout)

        check()
