"""The agent runtime's own cost per step, beside the simulator's, at 1, 100 and 1,000 agents.

Run from the repository root::

    .venv/bin/python bench/agents.py             # the full table (about half a minute)
    .venv/bin/python bench/agents.py --quick     # fewer agents, one trial

Workload: scouts on the sample repository (rename `count_words`), each one
model call per step, 4 steps and 6 tool calls per agent (grep, four reads, a
write), every step appended to a SQLite log in a temporary folder. The model
is the offline simulator, in a process of its own (so that its CPU does not
count as the runtime's), reached through the official SDK over loopback.

Figures:
- per step, one agent at a time: wall time split into the model call
  (simulator + HTTP + SDK), the tools, and the runtime's own overhead
  (event appends, the transcript, hook dispatch, building the conversation);
  with no hooks, with no hooks and no transcript (`AgentSpec(transcript=False)`),
  and with a no-op Python hook at every hook point.
- the baseline, measured in the same run: the same model requests sent
  straight through `ModelClient.respond`, with no agent, no log and no tools.
- 1, 100 and 1,000 agents at once (one event loop, one log): steps/s, the
  runtime's overhead per step as each agent sees it (its appends, including
  the wait for a group commit, hooks, the conversation) beside the model
  call's, and the runtime process's CPU time per step (its own cost,
  whatever the waiting).

The machine has 2 cores and other work may be running: the figures are
indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from events import SQLiteEventStore
from hooks import HookDispatcher
from runtime import Agent, AgentSpec, AgentStats, ModelClient, Simulator, prepare_workspace

TASK = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/scout-{i}.md."
POINTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "SessionEnd",
)


@dataclass(frozen=True, slots=True)
class Sizes:
    sequential: int  # agents run one after another for the per-step split
    concurrency: tuple[int, ...]
    trials: int


FULL = Sizes(sequential=20, concurrency=(1, 100, 1_000), trials=3)
QUICK = Sizes(sequential=5, concurrency=(1, 100, 1_000), trials=1)


# -- the simulator in a process of its own -----------------------------------------------


async def _serve() -> None:
    async with Simulator() as sim:
        print(sim.base_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


class SimulatorProcess:
    """`python bench/agents.py --serve` in a child process; its URL on the first line."""

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


# -- workloads ------------------------------------------------------------------------------


def _spec(i: int, workspace: Path, run: str, transcript: bool = True) -> AgentSpec:
    return AgentSpec(
        agent_id=f"{run}-scout-{i}",
        name=f"scout-{i}",
        role="scout",
        model="haiku",
        workspace=workspace,
        run_id=run,
        transcript=transcript,
    )


async def _agents(
    store: SQLiteEventStore,
    client: ModelClient,
    workspace: Path,
    run: str,
    n: int,
    hooks: HookDispatcher | None,
    transcript: bool = True,
) -> list[Agent]:
    agents = [
        Agent(store=store, client=client, spec=_spec(i, workspace, run, transcript), hooks=hooks)
        for i in range(n)
    ]
    for i, agent in enumerate(agents):
        await agent.create(task=TASK.format(i=f"{run}-{i}"))
    return agents


def _split(stats: list[AgentStats]) -> dict[str, float]:
    steps = sum(s.steps for s in stats)
    per = lambda total: total / steps * 1000  # noqa: E731
    return {
        "steps": steps,
        "model_ms": per(sum(s.model_s for s in stats)),
        "tool_ms": per(sum(s.tool_s for s in stats)),
        "overhead_ms": per(sum(s.overhead_s for s in stats)),
        "append_ms": per(sum(s.append_s for s in stats)),
        "hook_ms": per(sum(s.hook_s for s in stats)),
    }


async def sequential(
    store: SQLiteEventStore,
    client: ModelClient,
    workspace: Path,
    run: str,
    n: int,
    hooks: HookDispatcher | None,
    transcript: bool = True,
) -> dict[str, float]:
    agents = await _agents(store, client, workspace, run, n, hooks, transcript)
    for agent in agents:
        outcome = await agent.run_until_idle()
        assert outcome.status == "completed", outcome.error
    return _split([a.stats for a in agents])


async def concurrent(
    store: SQLiteEventStore, client: ModelClient, workspace: Path, run: str, n: int
) -> dict[str, float]:
    agents = await _agents(store, client, workspace, run, n, None)
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = await asyncio.gather(*(a.run_until_idle() for a in agents))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert {o.status for o in outcomes} == {"completed"}
    split = _split([a.stats for a in agents])
    steps = split["steps"]
    return {"steps_s": steps / wall, "cpu_ms": cpu / steps * 1000, "wall_s": wall, **split}


async def baseline(client: ModelClient, store: SQLiteEventStore, run: str) -> float:
    """ms per model request with no runtime around it: replay one recorded scout's requests."""
    events = await store.read_stream(f"agent-{run}-scout-0")
    created = events[0].data
    system = created.system_prompt  # type: ignore[union-attr]
    from runtime import worker_toolbox
    from runtime._conversation import AgentState

    state = AgentState(f"{run}-scout-0")
    requests = []
    for event in events:
        if event.type == "ModelResponded":
            requests.append([dict(m) for m in state.messages])
        state.apply(event)
    tools = worker_toolbox().definitions()
    started = time.perf_counter()
    for messages in requests:
        await client.respond(model="haiku", system=system, messages=messages, tools=tools)
    return (time.perf_counter() - started) / len(requests) * 1000


async def main(sizes: Sizes) -> None:
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess() as url:
        workspace = await prepare_workspace(Path(tmp) / "repo")
        async with (
            SQLiteEventStore(Path(tmp) / "fleet.db") as store,
            ModelClient.from_env(simulator_base_url=url, env={}) as client,
            HookDispatcher() as hooks,
        ):
            for point in POINTS:
                hooks.add_python(point, lambda payload: None, name="noop")
            print(
                f"fleet agent runtime, {os.cpu_count()} cores, simulator in its own process: {url}"
            )
            print("(offline simulator: its answers are scripted; figures are indicative)\n")
            await sequential(store, client, workspace, "warm", 3, None)

            plain, bare, hooked, base = [], [], [], []
            for t in range(sizes.trials):
                plain.append(
                    await sequential(store, client, workspace, f"plain{t}", sizes.sequential, None)
                )
                bare.append(
                    await sequential(
                        store, client, workspace, f"bare{t}", sizes.sequential, None, False
                    )
                )
                hooked.append(
                    await sequential(
                        store, client, workspace, f"hooked{t}", sizes.sequential, hooks
                    )
                )
                base.append(await baseline(client, store, f"plain{t}"))
            med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
            print(
                f"per step, one agent at a time ({sizes.sequential} agents x 4 steps, "
                f"median of {sizes.trials}):"
            )
            print(f"  {'':34}{'no hooks':>10}{'no transcript':>15}{'10 no-op hooks':>16}")
            for key, label in [
                ("overhead_ms", "runtime overhead (ms/step)"),
                ("append_ms", "  of which event appends"),
                ("hook_ms", "  of which hook dispatch"),
                ("model_ms", "model call: simulator+HTTP+SDK"),
                ("tool_ms", "tools (grep, read, write)"),
            ]:
                print(
                    f"  {label:34}{med(plain, key):>10.2f}{med(bare, key):>15.2f}"
                    f"{med(hooked, key):>16.2f}"
                )
            b = statistics.median(base)
            print(f"  baseline: the same requests without the runtime: {b:.2f} ms/request")
            print(f"  runtime overhead / model call: {med(plain, 'overhead_ms') / b:.2f}x\n")

            print("all agents at once (one event loop, one SQLite log), ms per step:")
            print(
                f"  {'agents':>6}{'steps/s':>10}{'overhead':>11}{'appends':>11}{'model':>11}"
                f"{'CPU':>7}{'wall s':>9}"
            )
            for n in sizes.concurrency:
                rows = [
                    await concurrent(store, client, workspace, f"c{n}-{t}", n)
                    for t in range(sizes.trials)
                ]
                print(
                    f"  {n:>6,}{med(rows, 'steps_s'):>10.0f}{med(rows, 'overhead_ms'):>11.2f}"
                    f"{med(rows, 'append_ms'):>11.2f}{med(rows, 'model_ms'):>11.2f}"
                    f"{med(rows, 'cpu_ms'):>7.2f}{med(rows, 'wall_s'):>9.2f}"
                )
            print(
                "  (overhead: the runtime's own time per step as each agent sees it, waits "
                "included; CPU: the runtime process's CPU time per step)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer agents, one trial")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
    else:
        asyncio.run(main(QUICK if args.quick else FULL))
