"""Fixtures of the end-to-end tests with the real Claude Code: `fleet simulator`, `fleet serve`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cc_support import Process, claude_bin, start, stop


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """`fleet simulator` on a free loopback port."""
    claude_bin()
    log = tmp_path_factory.mktemp("simulator") / "simulator.log"
    running = start(["simulator", "--port", "0"], log, r"(?m)^(http://127\.0\.0\.1:\d+)$")
    yield running
    stop(running)


@pytest.fixture(scope="module")
def fleet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """`fleet serve` on a free loopback port, with a log of its own."""
    claude_bin()
    folder = tmp_path_factory.mktemp("serve")
    args = ["serve", "--port", "0", "--db", str(folder / "fleet.db")]
    running = start(args, folder / "serve.log", r"(http://127\.0\.0\.1:\d+)/")
    with httpx.Client(base_url=running.url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
    yield running
    stop(running)
