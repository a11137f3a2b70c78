"""Fixtures of the runtime tests: the simulator on loopback, a model client through the
real SDK, the sample repository as a git workspace, and a helper to run one agent.

Retries are kept fast: the simulator's faults carry `retry-after: 0` (sent as 1 ms).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime import ModelClient, Simulator, prepare_workspace


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as simulator:
        yield simulator


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[ModelClient]:
    async with ModelClient.from_env(simulator_base_url=sim.base_url, env={}, max_retries=2) as c:
        yield c


@pytest.fixture
async def workspace(tmp_path: Path) -> Path:
    return await prepare_workspace(tmp_path / "repo")
