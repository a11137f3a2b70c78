"""Export, import and rebuild a large run; re-execute the demo run beside the original.

Run from the repository root::

    .venv/bin/python bench/replay.py                   # a run of 100,000 events
    .venv/bin/python bench/replay.py --events 20000    # a quick look

Part 1, a run of `--events` events: a synthetic scout-plan-build-shaped run
(an orchestrator and 24 agents; each step a model response, a tool request,
a PreToolUse hook and a completion) written through the store once and kept
under /tmp. Each phase runs in a fresh process so its peak RSS is its own, and
each is timed `--repeat` times (median shown):

- baseline: reading the run's events through the store once (`iter_all`
  with the run's filter, decoded), which every export has to do;
- export: `export_run` to a file (read, check, encode, write);
- import: `read_export` (every line parsed, checked, the checksum verified)
  and `import_run` into an empty log (one transaction);
- rebuild: a `ProjectionRunner` opened on the imported log with no
  checkpoint, folding all five read models.

Memory is the phase process's peak RSS beside that of a process that only
imports fleet (measured in the same run).

Part 2, the demo run (scout-plan-build on the sample repository, simulator
with no latency): the original recorded through the simulator, then its
re-execution (`rerun`: the workspace clone, the replay model, tools and
hooks anew, the comparison), each `--repeat` times.

The machine has 2 cores and other work may be running: figures are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path: take it off so
# nothing here shadows a package, and put the repository root on instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT))

from events import (  # noqa: E402
    AgentCompleted,
    AgentCreated,
    EventFilter,
    HookInvoked,
    Meta,
    ModelResponded,
    NewEvent,
    RunCompleted,
    RunStarted,
    SQLiteEventStore,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
    export_run,
    import_run,
    read_export,
)

CACHE = Path(tempfile.gettempdir()) / "fleet-bench-replay"
RUN_ID = "run-bench"
AGENTS = 24


def _rss_mib() -> float:
    """This process's peak RSS. (Not `ru_maxrss`: a child starts with its parent's at fork.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # no /proc (not Linux): fall back to getrusage below
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the large run ------------------------------------------------------------------------


def _agent_events(index: int, steps: int) -> list[NewEvent]:
    agent_id = f"agent{index:02d}"
    meta = Meta(run_id=RUN_ID, agent_id=agent_id, parent_id="orchestrator-bench")
    hook_meta = Meta(
        run_id=RUN_ID, agent_id=agent_id, parent_id="orchestrator-bench", source="hook"
    )
    out = [
        NewEvent(AgentCreated(agent_id=agent_id, name=f"worker-{index}", role="scout",
                              model="claude-haiku-4-5", parent_id="orchestrator-bench"), meta),
    ]  # fmt: skip
    for step in range(steps):
        call = f"toolu_{index:02d}_{step:06d}"
        path = f"src/module_{step % 50}.py"
        out += [
            NewEvent(ModelResponded(
                agent_id=agent_id, message_id=f"msg_{call}", model="claude-haiku-4-5",
                stop_reason="tool_use", turn=step + 1,
                content=[{"type": "text", "text": f"Reading {path} to find the call sites."},
                         {"type": "tool_use", "id": call, "name": "Read",
                          "input": {"file_path": path}}],
                usage=Usage(input_tokens=1200 + step, output_tokens=40), cost_usd=0.0012,
            ), meta),
            NewEvent(ToolCallRequested(agent_id=agent_id, tool_use_id=call, name="Read",
                                       input={"file_path": path}), meta),
            NewEvent(HookInvoked(point="PreToolUse", kind="command", hook="command guard.sh",
                                 agent_id=agent_id, tool_use_id=call, decision="allow",
                                 duration_ms=3.2), hook_meta),
            NewEvent(ToolCallCompleted(agent_id=agent_id, tool_use_id=call, name="Read",
                                       result=f"def handler_{step}(request):\n    return 42\n" * 4,
                                       duration_ms=0.4, files_read=[path]), meta),
        ]  # fmt: skip
    out.append(NewEvent(AgentCompleted(agent_id=agent_id, summary="done"), meta))
    return out


async def _make_log(path: Path, events: int) -> None:
    steps = max(1, (events - 3) // (AGENTS * 4))
    async with SQLiteEventStore(path) as store:
        meta = Meta(run_id=RUN_ID)
        started = RunStarted(run_id=RUN_ID, task="bench", pattern="bench")
        await store.append(f"run-{RUN_ID}", [NewEvent(started, meta)])
        streams = [_agent_events(i, steps) for i in range(AGENTS)]
        # Interleave the agents a few events at a time, as concurrent agents write.
        cursor = [0] * AGENTS
        while any(c < len(s) for c, s in zip(cursor, streams, strict=True)):
            pending = []
            for i, stream in enumerate(streams):
                if cursor[i] < len(stream):
                    batch = stream[cursor[i] : cursor[i] + 4]
                    cursor[i] += len(batch)
                    pending.append(store.append(f"agent-agent{i:02d}", batch))
            await asyncio.gather(*pending)
        await store.append(f"run-{RUN_ID}", [NewEvent(RunCompleted(run_id=RUN_ID), meta)])


# -- phases (each in its own process) ----------------------------------------------------


async def _phase(name: str, work: Path) -> dict[str, Any]:
    source, exported, target = work / "source.db", work / "run.jsonl", work / "target.db"
    started = time.perf_counter()
    result: dict[str, Any] = {}
    if name == "baseline":
        async with SQLiteEventStore(source) as store:
            where = EventFilter.of(run_id=RUN_ID)
            result["events"] = sum([1 async for _ in store.iter_all(where=where)])
    elif name == "export":
        async with SQLiteEventStore(source) as store:
            written = await export_run(store, RUN_ID, exported)
        result |= {"events": written.events, "bytes": written.bytes}
    elif name == "import":
        _remove_log(target)
        export = await read_export(exported)
        parsed = time.perf_counter()
        async with SQLiteEventStore(target) as store:
            imported = await import_run(store, export)
        result |= {"events": imported.events, "parse_s": parsed - started}
    elif name == "rebuild":
        from projections import ProjectionRunner

        async with SQLiteEventStore(target) as store:
            runner = ProjectionRunner(store)
            await runner.start()
            result["events"] = runner.position
            await runner.aclose(checkpoint=False)
    elif name != "idle":
        raise SystemExit(f"unknown phase {name}")
    result["seconds"] = time.perf_counter() - started
    result["rss_mib"] = _rss_mib()
    return result


def _remove_log(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _child(name: str, work: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--work", str(work)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the demo run and its re-execution ------------------------------------------------------


async def _demo(repeat: int, base: Path) -> list[tuple[float, float, float, int]]:
    from projections import ProjectionRunner
    from runtime import RuntimeOptions, load_pattern, open_runtime, prepare_workspace, run_pattern
    from runtime.replay import RerunOptions, rerun

    out = []
    for i in range(repeat):
        folder = base / f"demo-{i}"
        workspace = await prepare_workspace(folder / "repo")
        options = RuntimeOptions(db=folder / "fleet.db", workspace=workspace, env={})
        began = time.perf_counter()
        async with open_runtime(options) as rt:
            recorded = await run_pattern(
                rt.fleet, load_pattern("scout-plan-build"),
                "rename `count_words` to `word_count` everywhere",
            )  # fmt: skip
        original = time.perf_counter() - began
        async with (
            SQLiteEventStore(folder / "fleet.db") as store,
            ProjectionRunner(store) as runner,
        ):
            began = time.perf_counter()
            result = await rerun(
                store, runner, recorded.run_id, RerunOptions(workspace=folder / "copy")
            )
            replayed = time.perf_counter() - began
        assert result.status == "completed", result.to_json()
        assert not result.divergences, result.to_json()
        out.append((original, recorded.duration_ms / 1000, replayed, result.responses_served))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(asyncio.run(_phase(args.phase, Path(args.work)))))
        return

    work = CACHE / str(args.events)
    source = work / "source.db"
    if not source.exists():
        work.mkdir(parents=True, exist_ok=True)
        print(f"writing a run of {args.events:,} events to {source} (kept for next time)...")
        asyncio.run(_make_log(source, args.events))
    idle = statistics.median(_child("idle", work)["rss_mib"] for _ in range(args.repeat))
    rows = []
    phases = ("baseline", "export", "import", "rebuild")
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in phases}
    for _ in range(args.repeat):  # interleaved, so a busy moment hits every phase alike
        for phase in phases:
            results[phase].append(_child(phase, work))
    base_s = statistics.median(r["seconds"] for r in results["baseline"])
    for phase in phases:
        runs = results[phase]
        seconds = statistics.median(r["seconds"] for r in runs)
        events = runs[0]["events"]
        rss = max(r["rss_mib"] for r in runs)
        rows.append((phase, events, seconds, events / seconds, seconds / base_s, rss, rss - idle))
    size = results["export"][0]["bytes"]
    parse = statistics.median(r["parse_s"] for r in results["import"])

    print(
        f"\nA run of {rows[0][1]:,} events ({size / 2**20:.1f} MiB exported); median of "
        f"{args.repeat}; fresh process per phase (idle fleet process: {idle:.0f} MiB RSS)\n"
    )
    print(f"{'phase':<10}{'events':>10}{'seconds':>10}{'events/s':>12}{'x read':>9}"
          f"{'peak RSS MiB':>14}{'over idle':>11}")  # fmt: skip
    for phase, events, seconds, rate, ratio, rss, extra in rows:
        print(f"{phase:<10}{events:>10,}{seconds:>10.2f}{rate:>12,.0f}{ratio:>9.2f}"
              f"{rss:>14.0f}{extra:>11.0f}")  # fmt: skip
    print(f"(import: {parse:.2f} s of it reading and checking the file, the rest the transaction)")

    with tempfile.TemporaryDirectory() as tmp:
        demo = asyncio.run(_demo(args.repeat, Path(tmp)))
    original = statistics.median(d[0] for d in demo)
    recorded = statistics.median(d[1] for d in demo)
    replayed = statistics.median(d[2] for d in demo)
    print(f"\nThe demo run (scout-plan-build, simulator latency 0), median of {args.repeat}:")
    print(f"  original run:  {original:.2f} s wall ({recorded:.2f} s RunStarted to RunCompleted)")
    print(f"  re-execution:  {replayed:.2f} s wall (clone, {demo[0][3]} answers replayed, tools, "
          f"comparison), {replayed / original:.2f}x the original, no divergence")  # fmt: skip
    shutil.rmtree(CACHE / "unused", ignore_errors=True)


if __name__ == "__main__":
    main()
