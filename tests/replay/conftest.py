"""Fixtures of the replay tests: runs recorded once per session through the simulator.

Recording a run takes about a second, so each kind of run is recorded once
(`recorded_pattern`, `recorded_orchestrator`) into a log that is then closed
and never written again; a test that writes gets its own copy (`log`).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from replay_support import Recording, record

from events import SQLiteEventStore


@pytest.fixture(scope="session")
def recorded_pattern(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """A scout-plan-build run on the sample repository, recorded through the simulator."""
    return asyncio.run(record(tmp_path_factory.mktemp("pattern"), "scout-plan-build"))


@pytest.fixture(scope="session")
def recorded_orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """An orchestrator-agent run on the sample repository, recorded through the simulator."""
    return asyncio.run(record(tmp_path_factory.mktemp("orchestrator"), None))


@pytest.fixture
def log(recorded_pattern: Recording, tmp_path: Path) -> Path:
    """A copy of the recorded scout-plan-build log, for a test to write to."""
    target = tmp_path / "fleet.db"
    shutil.copyfile(recorded_pattern.db, target)
    return target


@pytest.fixture
async def store(log: Path) -> AsyncIterator[SQLiteEventStore]:
    """The copied log, open (closed after the test)."""
    async with SQLiteEventStore(log, poll_interval=0.05) as opened:
        yield opened
