"""How fast the dashboard and the terminal views keep up with the log.

Run from the repository root (needs Debian's chromium for the browser part)::

    .venv/bin/python bench/dashboard.py                 # 20,000 events in the log, a 3,000 burst
    .venv/bin/python bench/dashboard.py --events 5000 --burst 1000
    .venv/bin/python bench/dashboard.py --log /tmp/fleet-bench-projections/runs-v2-1000000.db
                                        # the dashboard alone, on a copy of a given log

A synthetic log of scout-plan-build-like runs (an orchestrator, scouts, a
planner and a builder per run; model responses, tool calls with files, waits,
task moves) is written first. Then:

- terminal: `fleet agents --json` in a fresh process, without projection
  checkpoints (folds the whole log) and again with them; `fleet events
  --json` printing the whole log, in events/s, against the baseline of
  reading the same log through the store in process (`iter_all`).
- dashboard: the page opened on the server with the log in it, until every
  panel shows the head (history + five views); then a burst of events
  appended as fast as the store takes them, and the time from the last
  append until the dashboard's feed holds it and its views show it, against
  the baseline of a bare `EventSource` in the same page that only counts
  what it receives (the SSE delivery itself).

The machine has 2 cores and other work may be running: the figures are
indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

# The repository first: this folder's projections.py would shadow the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import ApiConfig, serving
from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentWaiting,
    AgentWoke,
    EventModel,
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

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
]  # fmt: skip


def run_events(n: int) -> list[tuple[str, list[NewEvent]]]:
    """One synthetic run (#n) as appends: (stream, events) in order."""
    run, orch = f"run-{n:05d}", f"orch-{n:05d}"
    steps: list[tuple[str, list[NewEvent]]] = []

    def add(stream: str, agent: str | None, *datas: EventModel) -> None:
        meta = Meta(run_id=run, agent_id=agent, parent_id=None if agent == orch else orch)
        steps.append((stream, [NewEvent(d, meta) for d in datas]))  # type: ignore[arg-type]

    add(f"run-{run}", None, RunStarted(run_id=run, task="bench", pattern="scout-plan-build"))
    add(
        f"agent-{orch}", orch,
        AgentCreated(agent_id=orch, name="orchestrator", role="orchestrator",
                     model="claude-sonnet-4-5"),
        AgentCommanded(agent_id=orch, prompt="go"),
    )  # fmt: skip
    add(f"task-{run}", orch, TaskCreated(task_id=run, title="bench task"))
    workers = [
        ("scout-1", "scout"),
        ("scout-2", "scout"),
        ("plan", "planner"),
        ("build", "builder"),
    ]
    usage = Usage(input_tokens=900, output_tokens=120, cache_read_input_tokens=2000)
    for name, role in workers:
        agent = f"{name}-{n:05d}"
        add(
            f"agent-{agent}", agent,
            AgentCreated(agent_id=agent, name=name, role=role, model="claude-haiku-4-5",
                         parent_id=orch),
            AgentCommanded(agent_id=agent, prompt="work", by=orch),
        )  # fmt: skip
        add(f"agent-{orch}", orch, AgentWaiting(agent_id=orch, on=[agent]))
        for turn in range(3):
            use = f"tu-{agent}-{turn}"
            wrote = [f"notes/{agent}.md"] if turn == 2 else []
            add(
                f"agent-{agent}", agent,
                ModelResponded(agent_id=agent, model="claude-haiku-4-5", turn=turn,
                               cost_usd=0.001, usage=usage),
                ToolCallRequested(agent_id=agent, tool_use_id=use, name="Read",
                                  input={"file_path": f"f{turn}.py"}),
                ToolCallCompleted(agent_id=agent, tool_use_id=use, name="Read",
                                  files_read=[f"f{turn}.py"], files_written=wrote),
            )  # fmt: skip
        done = AgentCompleted(agent_id=agent, summary="done", artifacts=[f"notes/{agent}.md"])
        add(f"agent-{agent}", agent, done)
        add(f"agent-{orch}", orch, AgentWoke(agent_id=orch, on=[agent], changed=[agent]))
        add(f"task-{run}", orch, TaskMoved(task_id=run, column="BUILD", assignee=agent))
    add(f"task-{run}", orch, TaskMoved(task_id=run, column="DONE"))
    add(f"run-{run}", None, RunCompleted(run_id=run, summary="ok", duration_ms=1000.0))
    return steps


async def write_log(db: Path, events: int, first_run: int = 0) -> int:
    """Append runs until the log holds at least `events` more events; returns the head."""
    async with SQLiteEventStore(db) as store:
        target = await store.head() + events
        n = first_run
        while await store.head() < target:
            await asyncio.gather(*(append_run(store, n + k) for k in range(8)))
            n += 8
        return await store.head()


async def append_run(store: SQLiteEventStore, n: int) -> None:
    for stream, batch in run_events(n):
        await store.append(stream, batch)


def drop_checkpoints(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table in tables - {"events", "spans", "sqlite_sequence"}:
            if "checkpoint" in table:
                conn.execute(f"DELETE FROM {table}")


def timed_cli(*argv: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "api.cli", *argv], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


async def read_rate(db: Path) -> float:
    async with SQLiteEventStore(db) as store:
        started = time.perf_counter()
        count = 0
        async for _ in store.iter_all(lenient=True):
            count += 1
        return count / (time.perf_counter() - started)


def cold_agents(db: Path) -> float:
    drop_checkpoints(db)
    return timed_cli("agents", "--db", str(db), "--json")


def print_rate(db: Path, head: int, as_json: bool) -> float:
    """`fleet events` in process, into /dev/null: events/s."""
    from api.cli._views import _print_events

    args = argparse.Namespace(
        run=None, agent=None, type=None, tail=None, after=None, follow=False, limit=None,
        json=as_json,
    )  # fmt: skip
    stdout = sys.stdout
    with open(os.devnull, "w") as devnull:
        sys.stdout = devnull
        try:
            started = time.perf_counter()
            asyncio.run(_print_events(db, args))
            elapsed = time.perf_counter() - started
        finally:
            sys.stdout = stdout
    return head / elapsed


def terminal(db: Path, head: int) -> None:
    print(f"\nterminal views on {head:,} events")
    startup = statistics.median(timed_cli("--help") for _ in range(3))
    cold = statistics.median(cold_agents(db) for _ in range(3))
    warm = statistics.median(timed_cli("agents", "--db", str(db), "--json") for _ in range(3))
    print(f"  baseline: `fleet --help` (process start, imports)  {startup:6.2f} s  (medians of 3)")
    print(f"  fleet agents --json, no checkpoint (folds the log) {cold:6.2f} s")
    print(f"  fleet agents --json, from the checkpoints          {warm:6.2f} s")
    rates: dict[str, list[float]] = {"read": [], "json": [], "lines": []}
    for _ in range(3):  # interleaved: the machine is shared
        rates["read"].append(asyncio.run(read_rate(db)))
        rates["json"].append(print_rate(db, head, True))
        rates["lines"].append(print_rate(db, head, False))
    base, as_json, lines = (max(rates[k]) for k in ("read", "json", "lines"))
    print("  in process, best of 3:")
    print(f"    baseline: read through the store             {base:10,.0f} events/s")
    print(f"    fleet events --json, into /dev/null          {as_json:10,.0f} events/s"
          f"  ({as_json / base:.2f}x)")  # fmt: skip
    print(f"    fleet events (readable lines), /dev/null     {lines:10,.0f} events/s"
          f"  ({lines / base:.2f}x)")  # fmt: skip


COUNTER = """(from) => {
  window.bare = {count: 0, last: 0, at: 0};
  const source = new EventSource('v1/events/stream?from=' + from);
  source.onmessage = (m) => {
    window.bare.count += 1;
    window.bare.last = Number(m.lastEventId);
    window.bare.at = performance.now();
  };
}"""


async def dashboard(db: Path, burst: int, chromium: str) -> None:
    from playwright.async_api import async_playwright

    config = ApiConfig(db=db, store_poll_s=0.05)
    async with async_playwright() as pw, serving(config) as server:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1500, "height": 1000})
        async with SQLiteEventStore(db) as store:
            head = await store.head()
            started = time.perf_counter()
            await page.goto(server.url + "/")
            await page.wait_for_function(
                "(p) => document.body.dataset.viewPosition === String(p)", arg=head, timeout=120_000
            )
            opened = time.perf_counter() - started
            agents = await page.locator(".agent-card").count()
            print(f"\ndashboard on {head:,} events ({agents:,} agent cards)")
            print(f"  page opened until every panel shows the head    {opened:7.2f} s")

            await page.evaluate(COUNTER, head)
            await page.wait_for_function("() => window.bare !== undefined")
            await asyncio.sleep(0.5)
            t0 = await page.evaluate("performance.now()")
            started = time.perf_counter()
            target = await write_log(db, burst, first_run=10_000_000)
            appended = time.perf_counter() - started
            await page.wait_for_function(
                "(p) => window.bare.last === p", arg=target, timeout=120_000
            )
            await page.wait_for_function(
                "(p) => window.fleetDashboard.lastId === p"
                " && document.querySelector('#feed .feed-row').dataset.position === String(p)",
                arg=target, timeout=120_000, polling=10,
            )  # fmt: skip
            fed = await page.evaluate("performance.now()")
            await page.wait_for_function(
                "(p) => document.body.dataset.viewPosition === String(p)", arg=target,
                timeout=120_000, polling=10,
            )  # fmt: skip
            settled = await page.evaluate("performance.now()")
            bare_at = await page.evaluate("window.bare.at")
            n = target - head
            stats = await page.evaluate("window.fleetDashboard.stats")
            print(f"  burst of {n:,} events appended in {appended * 1000:,.0f} ms"
                  f" ({n / appended:,.0f} events/s)")  # fmt: skip
            print("  from the burst's start, until the last event (ms):")
            print(f"    baseline: a bare EventSource has it      {bare_at - t0:7.0f}")
            print(f"    the dashboard has it                     {stats['receivedAt'] - t0:7.0f}")
            print(f"    the dashboard's feed shows it            {fed - t0:7.0f}")
            print(f"    every panel shows it                     {settled - t0:7.0f}")
            print(f"  view refresh rounds {stats['refreshes']:,} (at most one per 300 ms), last"
                  f" render of the panels {stats['renderMs']} ms; duplicates"
                  f" {stats['duplicates']}, gaps {len(stats['gaps'])}")  # fmt: skip
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=3_000)
    parser.add_argument(
        "--log", type=Path, help="open the dashboard on a copy of this log (no terminal part)"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fleet-bench-dashboard-"))
    try:
        db = folder / "fleet.db"
        if args.log is not None:
            shutil.copyfile(args.log, db)  # the burst is appended to the copy
        else:
            started = time.perf_counter()
            head = asyncio.run(write_log(db, args.events))
            print(f"log: {head:,} events written in {time.perf_counter() - started:.1f} s ({db})")
            terminal(db, head)
        chromium = shutil.which("chromium")
        if chromium is None:
            print("\ndashboard: skipped (no chromium on PATH)")
            return
        asyncio.run(dashboard(db, args.burst, chromium))
        print("\n(2 shared cores: indicative figures)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
