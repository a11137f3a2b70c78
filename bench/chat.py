"""How long a message to the orchestrator takes to be answered, over HTTP, offline.

    .venv/bin/python bench/chat.py [--rounds N]

Opens the API app (runtime included, the offline simulator as the model) on a
fresh log and, in one conversation, interleaves per round:

- baseline `GET /v1/agents/{id}/status` of an agent (a plain read of the fleet);
- `/status` posted to the conversation: POST, the fleet answers (no model);
- `status` in prose: POST, the orchestrator agent is commanded, calls the model
  (the simulator over loopback) and `list_agents`, answers.

Each is timed from the request to the answer being readable in
`GET /v1/orchestrator/conversations/{id}` (polled every millisecond). Prints
the median, p90 and min in ms and the ratios to the baseline.
Figures are indicative on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

# Run as a script, this folder comes first on sys.path, and bench/projections.py
# would shadow the projections package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

from api import ApiConfig, create_app
from runtime import prepare_workspace


async def _answered(client: httpx.AsyncClient, cid: str, position: int) -> None:
    while True:
        got = (await client.get(f"/v1/orchestrator/conversations/{cid}")).json()
        if any(m["reply_to"] == position for m in got["messages"]):
            return
        await asyncio.sleep(0.001)


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = await prepare_workspace(Path(tmp) / "repo")
        config = ApiConfig(db=Path(tmp) / "fleet.db", store_poll_s=0.05, workspace=workspace)
        app = create_app(config)
        transport = httpx.ASGITransport(app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        ):
            created = await client.post("/v1/agents", json={"name": "idle", "role": "scout"})
            agent = created.json()["id"]
            first = await client.post("/v1/orchestrator/messages", json={"text": "status"})
            cid = first.json()["conversation_id"]
            await _answered(client, cid, first.json()["position"])

            async def baseline() -> None:
                (await client.get(f"/v1/agents/{agent}/status")).raise_for_status()

            def say(text: str) -> Callable[[], Awaitable[None]]:
                async def run() -> None:
                    body = {"text": text, "conversation_id": cid}
                    posted = (await client.post("/v1/orchestrator/messages", json=body)).json()
                    await _answered(client, cid, posted["position"])

                return run

            cases = {"baseline: GET status": baseline, "/status (the fleet answers)": say(
                "/status"), "status (the orchestrator answers)": say("status")}  # fmt: skip
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(rounds):
                for name, case in cases.items():
                    started = time.perf_counter()
                    await case()
                    times[name].append((time.perf_counter() - started) * 1000)
    base = statistics.median(times["baseline: GET status"])
    print(f"chat round trip over HTTP (ASGI, offline simulator), {rounds} rounds")
    print(f"{'case':40} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'x base':>7}")
    for name, values in times.items():
        values.sort()
        median = statistics.median(values)
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(f"{name:40} {median:10.1f} {p90:8.1f} {values[0]:8.1f} {median / base:7.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    asyncio.run(main(parser.parse_args().rounds))
