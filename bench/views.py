"""What answering a view through its response model costs, and what a 304 saves.

Run from the repository root::

    .venv/bin/python bench/views.py                 # 1,000 agents in 100 runs
    .venv/bin/python bench/views.py --agents 5000   # a bigger fleet
    .venv/bin/python bench/views.py --log /tmp/fleet-bench-projections/runs-v2-1000000.db
                                                    # a log bench/projections.py wrote

A log of `--agents` agents (10 per run, each created, commanded, two tool
calls, a model response, completed; a task per run moved through the board)
is written to a temporary folder and folded by a `ProjectionRunner`. Then,
for each view, medians over `--repeat` rounds of:

- baseline: the projection's view dict rendered as `JSONResponse` did before
  (`json.dumps`), i.e. serving the dict unchecked;
- model: the same dict validated through its response model and rendered
  by pydantic, plus the ETag (what every view answers through now), with
  the garbage collector paused as the server pauses it (before the
  twenty-third pass this column ran with it on: 2.5 to 4 times slower for
  the whole agents and graph at 1M); the ratio to the baseline is the price
  of one source of truth;
- GET: a whole request to the app in process (httpx's ASGITransport), the
  view rendered afresh each time (a new position: the render cache emptied);
- again: the same request at the same position (served from the render cache),
  and with a matching If-None-Match (304, no body).

With `--log`, that log (copied to a temporary folder: serving it writes
checkpoints) is served instead of a new one, and the views are also asked for
as of past positions (`?at=`), each request at a new position in the second
half of the log (nothing cached): a time-travel query, the view, its response
model and the JSON, as the dashboard's time slider asks for them; the agents
view whole, a page of 50 and one agent; and the agents and runs changed after
a position some events behind (`?changed_after=`), what the dashboard asks for
once it holds the lists, and the graph of the latest 8 runs (`?latest_runs=8`),
what it draws when no run is picked.

The machine is shared: the figures are indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path, and bench/projections.py
# would shadow the `projections` package: drop it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import httpx
from pydantic import BaseModel

from api import ApiConfig, create_app
from api._polling import etag_of
from api._routes_views import Answer, rendered
from api._view_models import AgentPage, Board, FleetTotals, Graph, RunPage
from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    Meta,
    ModelResponded,
    NewEvent,
    RunCompleted,
    RunStarted,
    SQLiteEventStore,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
)

PER_RUN = 10


async def write_log(path: Path, agents: int) -> int:
    """A log of `agents` agents in runs of PER_RUN; returns its head."""
    async with SQLiteEventStore(path) as store:
        for r in range(agents // PER_RUN):
            run = f"run{r:05d}"
            meta = Meta(run_id=run)
            await store.append(f"run-{run}", [NewEvent(RunStarted(run_id=run, task="t"), meta)])
            await store.append(f"task-{run}", [NewEvent(TaskCreated(task_id=run, title="t"), meta)])
            for i in range(PER_RUN):
                agent = f"{run}-a{i}"
                m = Meta(run_id=run, agent_id=agent)
                data: list[Any] = [
                    AgentCreated(agent_id=agent, name=agent, role=("scout", "builder")[i % 2],
                                 model="sim", parent_id=f"{run}-a0" if i else None),
                    AgentCommanded(agent_id=agent, prompt="go"),
                ]  # fmt: skip
                for n in range(2):
                    tu = f"{agent}-t{n}"
                    data += [
                        ToolCallRequested(agent_id=agent, tool_use_id=tu, name="Read",
                                          input={"file_path": f"f{n}.py"}),
                        ToolCallCompleted(agent_id=agent, tool_use_id=tu, name="Read",
                                          files_read=[f"f{n}.py"], files_written=[f"o{i}.md"]),
                    ]  # fmt: skip
                data += [
                    ModelResponded(agent_id=agent, model="sim", cost_usd=0.001,
                                   usage=Usage(input_tokens=900, output_tokens=120)),
                    AgentCompleted(agent_id=agent, summary="done", artifacts=[f"o{i}.md"]),
                ]  # fmt: skip
                await store.append(f"agent-{agent}", [NewEvent(d, m) for d in data])
            await store.append(
                f"task-{run}",
                [NewEvent(TaskMoved(task_id=run, column=c), meta) for c in ("BUILD", "DONE")],
            )
            await store.append(f"run-{run}", [NewEvent(RunCompleted(run_id=run), meta)])
        return await store.head()


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def median_request_ms(
    client: httpx.AsyncClient,
    url: str,
    repeat: int,
    headers: dict[str, str] | None = None,
    before: Callable[[], None] = lambda: None,
) -> tuple[float, int]:
    times = []
    status = 0
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        response = await client.get(url, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        status = response.status_code
    return statistics.median(times), status


def _model_render(model: type[BaseModel], view: dict[str, Any]) -> Callable[[], object]:
    # As the server answers: `rendered` is its own code (`api/_routes_views.py`, note 3).
    return lambda: etag_of(rendered(Answer(model, lambda: view)))


def _dict_render(view: dict[str, Any]) -> Callable[[], object]:
    return lambda: json.dumps(view, ensure_ascii=False, separators=(",", ":")).encode()


async def past_ms(
    client: httpx.AsyncClient, url: str, head: int, repeat: int, offset: int
) -> float:
    """Median ms of `url` at `repeat` positions in the log's second half, none cached."""
    times = []
    for i in range(repeat):
        at = head // 2 + (i * 7919 + offset * 104729) % (head // 2)
        joiner = "&" if "?" in url else "?"
        start = time.perf_counter()
        response = await client.get(f"{url}{joiner}at={at}")
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text[:200]
    return statistics.median(times)


async def gzip_rows(
    client: httpx.AsyncClient, views: list[Any], repeat: int, clear: Callable[[], None]
) -> None:
    """Each large view as a client that accepts gzip gets it: the bytes sent, and a whole
    request rendered afresh, read as it comes (the client's decompression left out)."""
    print("\ngzip (Accept-Encoding: gzip), a whole request rendered afresh, ms:")
    for name, url, *_ in views:
        times, size = [], 0
        for _ in range(repeat):
            clear()
            start = time.perf_counter()
            async with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as r:
                size = sum([len(chunk) async for chunk in r.aiter_raw()])
            times.append((time.perf_counter() - start) * 1000)
        print(f"  {name:<8}{size:>12,} bytes {statistics.median(times):>9.2f}")


async def what_a_dashboard_asks(
    client: httpx.AsyncClient, clear: Callable[[], None], head: int, repeat: int
) -> None:
    """What a dashboard asks for instead of whole views: the agents, runs and tasks changed
    after P (`?changed_after=P`, P some events behind), and the graph of the latest 8 runs; now and as
    of past positions in the second half of the log (each request at a new one)."""
    print("\nthe cards changed after P instead of every card (?changed_after=P), ms:")
    print(f"  {'list':<8}{'P is behind by':<16}{'now':>9}{'cards':>8}{'bytes':>11}{'past':>9}")
    for name in ("agents", "runs", "board"):
        for behind in (300, 3_000, 30_000):
            url = f"/v1/{name}?changed_after={head - behind}"
            now, _ = await median_request_ms(client, url, repeat, before=clear)
            body = (await client.get(url)).content
            times = []
            for i in range(max(3, repeat // 4)):
                at = head // 2 + (i * 7919 + behind) % (head // 2)
                start = time.perf_counter()
                response = await client.get(f"/v1/{name}?at={at}&changed_after={at - behind}")
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, response.text[:200]
            cards = json.loads(body)["count"]
            print(f"  {name:<8}{behind:<16,}{now:>9.1f}{cards:>8,}{len(body):>11,}"
                  f"{statistics.median(times):>9.1f}")  # fmt: skip
    print("\nback in time, from the head to P: the cards changed after P, by id, as of P, ms:")
    print(f"  {'list':<8}{'P is behind by':<16}{'cards':>8}{'bytes':>11}{'ms':>9}")
    for name, key in (("agents", "agent_id"), ("runs", "run_id")):
        held = json.loads((await client.get(f"/v1/{name}")).content)[name]
        for behind in (300, 3_000):
            at = head - behind
            ids = "".join(f"&{key}={c['id']}" for c in held if c["position"] > at)
            times, size = [], 0
            for _ in range(max(3, repeat // 4)):
                clear()
                start = time.perf_counter()
                response = await client.get(f"/v1/{name}?at={at}{ids}")
                times.append((time.perf_counter() - start) * 1000)
                size = len(response.content)
            print(f"  {name:<8}{behind:<16,}{ids.count('&'):>8,}{size:>11,}"
                  f"{statistics.median(times):>9.1f}")  # fmt: skip
    url = "/v1/graph?latest_runs=8"
    now, _ = await median_request_ms(client, url, repeat, before=clear)
    body = (await client.get(url)).content
    past = await past_ms(client, url, head, max(3, repeat // 4), 7)
    nodes = len(json.loads(body)["nodes"])
    print(f"\nthe graph of the latest 8 runs (?latest_runs=8, what the dashboard draws): "
          f"{now:.1f} ms now, {nodes} nodes, {len(body):,} bytes; {past:.1f} ms as of past positions")  # fmt: skip


async def main(agents: int, repeat: int, log: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fleet.db"
        if log is None:
            head = await write_log(db, agents)
        else:
            await asyncio.to_thread(shutil.copyfile, log, db)
            async with SQLiteEventStore(db) as store:
                head = await store.head()
        app = create_app(ApiConfig(db=db, runtime=False))
        async with app.router.lifespan_context(app):
            assert app.services is not None
            runner = app.services.runner
            await runner.wait_for(head, timeout=120)
            views: list[tuple[str, str, type[BaseModel], dict[str, Any]]] = [
                ("agents", "/v1/agents", AgentPage, {**runner.view("agents"), "next": None}),
                ("fleet", "/v1/fleet", FleetTotals, runner.view("fleet")),
                ("graph", "/v1/graph", Graph, runner.view("graph")),
                ("board", "/v1/board", Board, runner.view("board")),
                ("runs", "/v1/runs", RunPage, {**runner.view("runs"), "next": None}),
            ]
            fleet = runner.view("fleet")["agents"]["total"]
            runs = len(runner.view("runs")["runs"])
            print(f"{fleet:,} agents in {runs:,} runs, {head:,} events; "
                  f"medians of {repeat} rounds, ms")  # fmt: skip
            print(f"{'view':<8}{'bytes':>10}{'baseline':>10}{'model':>9}{'ratio':>7}"
                  f"{'GET':>9}{'again':>8}{'304':>8}")  # fmt: skip
            transport = httpx.ASGITransport(app)
            # Uncompressed, as before gzip (`_polling.py` note 4); what gzip gives is timed apart.
            identity = {"Accept-Encoding": "identity"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers=identity
            ) as client:
                for name, url, model, view in views:
                    size = len(_dict_render(view)())
                    baseline = median_ms(_dict_render(view), repeat)
                    validated = median_ms(_model_render(model, view), repeat)
                    renders = app.services.renders
                    cold, _ = await median_request_ms(client, url, repeat, before=renders.clear)
                    first = await client.get(url)
                    again, _ = await median_request_ms(client, url, repeat)
                    etag = {"If-None-Match": first.headers["etag"]}
                    not_modified, status = await median_request_ms(client, url, repeat, etag)
                    assert status == 304
                    print(f"{name:<8}{size:>10,}{baseline:>10.2f}{validated:>9.2f}"
                          f"{validated / baseline:>7.1f}{cold:>9.2f}{again:>8.2f}"
                          f"{not_modified:>8.2f}")  # fmt: skip
                await gzip_rows(client, views, repeat, renders.clear)
                if log is None:
                    return
                cards = runner.view("agents")["agents"]
                some = cards[len(cards) // 4]["id"]  # created before the second half
                past = [
                    ("agents", "/v1/agents"),
                    ("agents, a page of 50", "/v1/agents?limit=50"),
                    ("one agent", f"/v1/agents/{some}"),
                    *[(name, f"/v1/{name}") for name in ("fleet", "graph", "board", "runs")],
                ]
                print("\nas of past positions (?at=, each request at a new one), ms:")
                for offset, (name, url) in enumerate(past):
                    ms = await past_ms(client, url, head, max(3, repeat // 4), offset)
                    print(f"  {name:<22}{ms:>9.1f}")
                await what_a_dashboard_asks(client, app.services.renders.clear, head, repeat)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000, help="agents in the log")
    parser.add_argument("--repeat", type=int, default=20, help="rounds per figure")
    parser.add_argument("--log", type=Path, help="serve this log instead of writing one")
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.repeat, args.log))
