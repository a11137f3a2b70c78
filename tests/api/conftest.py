"""Fixtures of the API tests: an app in its lifespan, an httpx client on it, a uvicorn server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api import ApiConfig, FleetApp, Serving, create_app, serving
from events import SQLiteEventStore


@pytest.fixture
def config(tmp_path: Path) -> ApiConfig:
    """A config on a fresh log, polling fast, no token, no runtime (tests of agent CRUD add one)."""
    return ApiConfig(db=tmp_path / "fleet.db", store_poll_s=0.05, runtime=False)


@pytest.fixture
async def app(config: ApiConfig) -> AsyncIterator[FleetApp]:
    """The app, inside its lifespan (store, projections and broadcaster open)."""
    app = create_app(config)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FleetApp) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app in process."""
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def store(app: FleetApp) -> SQLiteEventStore:
    """The app's own store (append through it so the app sees events at once)."""
    assert app.services is not None
    return app.services.store


@pytest.fixture
async def server(config: ApiConfig) -> AsyncIterator[Serving]:
    """The app under uvicorn on a free loopback port."""
    async with serving(config) as running:
        yield running


@pytest.fixture
async def http(server: Serving) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the uvicorn server."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client
