"""A recorded run in a real tracing back end: Arize Phoenix, queried back through its own client.

Phoenix is large (a few minutes to install), so it is not in `make test`'s
install: this test is skipped unless `FLEET_PHOENIX` names a `phoenix`
executable (or `.venv-phoenix/bin/phoenix` exists). `make test-phoenix`
installs Phoenix into `.venv-phoenix` and runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from api.otel import export_run, trace_id_of
from events import ModelResponded, SQLiteEventStore, read_run

ROOT = Path(__file__).parents[2]
PHOENIX = os.environ.get("FLEET_PHOENIX") or str(ROOT / ".venv-phoenix" / "bin" / "phoenix")

pytestmark = [
    pytest.mark.phoenix,
    pytest.mark.skipif(
        not Path(PHOENIX).is_file(),
        reason="Arize Phoenix is not installed (make test-phoenix installs it into .venv-phoenix)",
    ),
]

# Runs in Phoenix's own environment: its client reads the trace back.
QUERY = """
import json, sys
from phoenix.client import Client
client = Client(base_url=sys.argv[1])
spans = client.spans.get_spans(project_identifier="default", trace_ids=[sys.argv[2]], limit=10000)
print(json.dumps(spans, default=str))
"""


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A loopback port kept until the block ends, as tests/conftest.py's `reserved_port`:
    bound here, not listening, so no other process takes it, while Phoenix's servers
    (SO_REUSEADDR) bind it all the same. A port found free and let go could be taken
    before Phoenix bound it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
async def phoenix(tmp_path: Path) -> AsyncIterator[str]:
    """Phoenix serving on loopback with a fresh working folder; its base URL."""
    with reserved_port() as port, reserved_port() as grpc:
        env = {**os.environ, "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"), "PHOENIX_HOST": "127.0.0.1",
               "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(grpc), "PHOENIX_TELEMETRY_ENABLED": "false"}  # fmt: skip
        log = (tmp_path / "phoenix.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            PHOENIX, "serve", env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient() as http, asyncio.timeout(150):
                while True:
                    assert proc.returncode is None, (tmp_path / "phoenix.log").read_text()[-2000:]
                    with contextlib.suppress(httpx.TransportError):  # not listening yet
                        if (await http.get(f"{url}/healthz")).status_code == 200:
                            break
                    await asyncio.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
            log.close()


async def query(url: str, trace_id: str, expected: int) -> list[dict[str, object]]:
    """The trace's spans as Phoenix's client returns them, once all have been ingested."""
    python = str(Path(PHOENIX).parent / "python")
    spans: list[dict[str, object]] = []
    async with asyncio.timeout(60):
        while len(spans) < expected:
            out = await asyncio.to_thread(
                subprocess.run,
                [python, "-c", QUERY, url, trace_id],
                capture_output=True,
                check=True,
            )
            spans = json.loads(out.stdout)
            if len(spans) < expected:
                await asyncio.sleep(0.5)
    return spans


@pytest.mark.timeout(300)
async def test_phoenix_shows_the_runs_tree_with_the_logs_usage(
    log: Path, run_id: str, phoenix: str
) -> None:
    async with SQLiteEventStore(log) as store:
        summary = await export_run(store, run_id, phoenix)
        events = await read_run(store, run_id)
    trace_id = f"{trace_id_of(run_id):032x}"
    assert summary.trace_id == trace_id
    spans = await query(phoenix, trace_id, summary.spans)
    assert len(spans) == summary.spans
    by_id = {s["context"]["span_id"]: s for s in spans}  # type: ignore[index]
    (root,) = [s for s in spans if s["parent_id"] is None]
    assert root["name"] == "invoke_workflow scout-plan-build"
    (orchestrator,) = [s for s in spans if s["parent_id"] == root["context"]["span_id"]]  # type: ignore[index]
    assert orchestrator["name"] == "invoke_agent orchestrator"
    agents = {s["name"] for s in spans if s["parent_id"] == orchestrator["context"]["span_id"]}  # type: ignore[index]
    assert {"invoke_agent scout-1", "invoke_agent plan", "invoke_agent build"} <= agents
    responses = {e.position: e.data for e in events if isinstance(e.data, ModelResponded)}
    chats = [s for s in spans if str(s["name"]).startswith("chat ")]
    tools = [s for s in spans if str(s["name"]).startswith("execute_tool ")]
    assert len(chats) == len(responses) and tools
    for span in chats + tools:
        parent = by_id[span["parent_id"]]  # type: ignore[index]
        assert str(parent["name"]).startswith("invoke_agent ")
    for chat in chats:
        attrs = chat["attributes"]
        d = responses[attrs["fleet.position"]]  # type: ignore[index]
        assert attrs["gen_ai.usage.output_tokens"] == d.usage.output_tokens  # type: ignore[index]
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == d.usage.cache_read_input_tokens  # type: ignore[index]
        assert attrs["gen_ai.usage.input_tokens"] == d.usage.context_tokens  # type: ignore[index]
        assert attrs["fleet.cost_usd"] == pytest.approx(d.cost_usd)  # type: ignore[index]
