"""Fixtures of the OpenTelemetry tests: a run recorded once per session, copied per test."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from otel_support import record_pattern_run


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A scout-plan-build run through the simulator, in a log no test writes to: (log, run id)."""
    return asyncio.run(record_pattern_run(tmp_path_factory.mktemp("otel-run")))


@pytest.fixture
def log(recorded: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the recorded log for one test."""
    target = tmp_path / "fleet.db"
    shutil.copyfile(recorded[0], target)
    return target


@pytest.fixture
def run_id(recorded: tuple[Path, str]) -> str:
    return recorded[1]
