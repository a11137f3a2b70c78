"""Many processes on one log: delivery latency across processes, and agents/s by workers.

Run from the repository root, with a PostgreSQL server::

    .venv/bin/python bench/workers.py --db postgresql://root@127.0.0.1/test
    .venv/bin/python bench/workers.py --db postgresql://root@127.0.0.1/test --quick

1. Delivery latency: an appender process appends one event every 20 ms,
   each carrying the wall time of its append call; `fleet serve --no-worker`
   (another process) streams the log over SSE; this driver reads the stream
   and records receipt time minus append time. PostgreSQL wakes the server by
   LISTEN/NOTIFY; the SQLite row is the same with one file, where the server
   finds another process's appends by polling (its default, every 0.2 s).
2. Agents per second: 1, 2 and 3 `fleet worker` processes on a fresh schema;
   this driver creates N agents (one model turn each on the offline simulator,
   no tools, `--latency` seconds per answer, as a model's wait) with
   `drive_agents=False`, and times until the log shows every one completed.
   Each worker drives `--capacity` agents at once (default 10), as a machine
   would be sized.

Each run uses a fresh schema, dropped afterwards. The machine has 2 cores and
other work may be running: the figures are indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

# bench/hooks.py must not shadow the `hooks` package: the repository root comes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events import AgentCommanded, Meta, NewEvent, open_store
from runtime import RuntimeOptions, open_runtime, prepare_workspace

APPENDER = """
import asyncio, sys, time
from events import AgentCommanded, Meta, NewEvent, open_store
async def main(url, count):
    async with open_store(url) as store:
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
        for n in range(count):
            event = NewEvent(AgentCommanded(agent_id="a", prompt=repr(time.time())), Meta(agent_id="a"))
            await store.append("agent-a", [event])
            await asyncio.sleep(0.02)
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def schema_url(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


async def drop(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


async def start_fleet(
    args: list[str], log: Path, pattern: str
) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "COLUMNS": "500", "NO_COLOR": "1"}
    env.pop("ANTHROPIC_API_KEY", None)
    with log.open("w") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api.cli",
            *args,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    async with asyncio.timeout(120):
        while not (found := re.search(pattern, await asyncio.to_thread(log.read_text))):
            if process.returncode is not None:
                raise RuntimeError(await asyncio.to_thread(log.read_text))
            await asyncio.sleep(0.05)
    return process, found.group(1)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        await process.wait()


async def delivery(location: str, count: int, folder: Path) -> list[float]:
    """Seconds from an append in one process to its SSE frame from another, per event."""
    async with open_store(location) as store:  # creates the log before the server opens it
        await store.append("agent-a", [NewEvent(AgentCommanded(agent_id="a", prompt="0"), Meta())])
    server, base = await start_fleet(
        ["serve", "--port", "0", "--db", location, "--no-worker"],
        folder / "serve.log",
        r"(http://127\.0\.0\.1:\d+)/",
    )
    appender = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        APPENDER,
        location,
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert appender.stdout is not None
    assert appender.stdin is not None
    await appender.stdout.readline()
    delays: list[float] = []
    try:
        async with (
            httpx.AsyncClient(base_url=base, timeout=60) as http,
            http.stream("GET", "/v1/events/stream", params={"from": 1}) as response,
        ):
            appender.stdin.write(b"go\n")
            await appender.stdin.drain()
            async for line in response.aiter_lines():
                if line.startswith("data:") and '"prompt"' in line:
                    sent = float(re.search(r'"prompt":\s*"([0-9.]+)"', line).group(1))  # type: ignore[union-attr]
                    delays.append(time.time() - sent)
                    if len(delays) == count:
                        break
    finally:
        await stop(server)
        if appender.returncode is None:
            appender.kill()
        await appender.wait()
    return delays


async def agents_per_second(
    url: str, workers: int, agents: int, latency: float, capacity: int, folder: Path
) -> float:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    location = schema_url(url, schema)
    workspace = await prepare_workspace(folder / f"repo-{schema}")
    processes = []
    try:
        options = RuntimeOptions(db=location, workspace=workspace, drive_agents=False)
        async with open_runtime(options) as rt:
            for w in range(workers):
                process, _ = await start_fleet(
                    [
                        "worker",
                        "--db",
                        location,
                        "--workspace",
                        str(workspace),
                        "--latency",
                        str(latency),
                        "--capacity",
                        str(capacity),
                    ],
                    folder / f"worker-{schema}-{w}.log",
                    r"fleet worker (\S+) on",
                )
                processes.append(process)
            start = time.perf_counter()
            await asyncio.gather(
                *(
                    rt.fleet.create_agent(f"a{n}", "analyst", "say hello", tools=[])
                    for n in range(agents)
                )
            )
            while True:
                listed = await rt.fleet.list_agents()
                if sum(a["status"] == "completed" for a in listed) == agents:
                    break
                await asyncio.sleep(0.05)
            return agents / (time.perf_counter() - start)
    finally:
        for process in processes:
            await stop(process)
        await drop(url, schema)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, metavar="URL", help="postgresql://...")
    parser.add_argument("--quick", action="store_true", help="fewer events and agents")
    parser.add_argument("--latency", type=float, default=0.5, help="simulator seconds per answer")
    parser.add_argument("--capacity", type=int, default=10, help="agents per worker at once")
    args = parser.parse_args()
    count, agents = (100, 30) if args.quick else (300, 90)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        folder = Path(tmp)
        print(
            f"delivery latency, append in one process -> SSE frame from another ({count} events at 50/s)"
        )
        print("| log | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|")
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        for name, location in (
            ("PostgreSQL (LISTEN/NOTIFY)", schema_url(args.db, schema)),
            ("SQLite (polling every 0.2 s)", str(folder / "log.db")),
        ):
            try:
                delays = sorted(await delivery(location, count, folder))
            finally:
                await drop(args.db, schema)
            q = statistics.quantiles(delays, n=100)
            print(
                f"| {name} | {statistics.median(delays) * 1000:.1f} | {q[89] * 1000:.1f} | {q[98] * 1000:.1f} |"
            )
        print(
            f"\nagents completed per second on the simulator ({agents} agents, one {args.latency} s turn each, {args.capacity} per worker at once)"
        )
        print("| workers | agents/s | vs 1 worker |\n|---:|---:|---:|")
        first = None
        for workers in (1, 2, 3):
            rate = await agents_per_second(
                args.db, workers, agents, args.latency, args.capacity, folder
            )
            first = first or rate
            print(f"| {workers} | {rate:.1f} | {rate / first:.2f}x |")


if __name__ == "__main__":
    asyncio.run(main())
