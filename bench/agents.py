"""The agent runtime's own cost per step, beside the simulator's, at 1, 100 and 1,000 agents.

Run from the repository root::

    .venv/bin/python bench/agents.py             # the full table (about half a minute)
    .venv/bin/python bench/agents.py --quick     # fewer agents, one trial

Workload: scouts on the sample repository (rename `count_words`), each one
model call per step, 4 steps and 6 tool calls per agent (grep, four reads, a
write), every step appended to a SQLite log in a temporary folder. Each
measurement's agents work in a fresh copy of the sample repository (a scout
greps all of it, so the notes of earlier trials would slow the next). The model
is the offline simulator, in a process of its own (so that its CPU does not
count as the runtime's), reached through the official SDK over loopback.

Figures:
- per step, one agent at a time: wall time split into the model call
  (simulator + HTTP + SDK), the tools, and the runtime's own overhead
  (event appends, the transcript, hook dispatch, building the conversation);
  with no hooks, with no hooks and no transcript (`AgentSpec(transcript=False)`),
  and with a no-op Python hook at every hook point.
- the baselines, measured in the same run on one scout's recorded requests:
  the same requests sent straight through `ModelClient.respond` (no agent, no
  log, no tools), and through a bare `AsyncAnthropic().messages.create` (the
  SDK alone, not streamed) and `messages.stream` (the SDK's own accumulator);
  then the SDK over aiohttp, as the runtime makes its clients
  (`runtime/_client.py`, notes 6 and 7: over aiohttp, and without the SDK's own
  spans when no tracer provider is set): `messages.create`, and a streamed
  `create` whose bytes are read and not parsed (the least a streamed request
  costs).
- 1, 100 and 1,000 agents at once (one event loop, one log): steps/s, the
  runtime's overhead per step as each agent sees it (its appends, including
  the wait for a group commit, hooks, the conversation) beside the model
  call's, and **the runtime's overhead a step**: the runtime process's CPU
  time per step (a step is one model call, with the tool calls and events it
  leads to), which is all its own cost whatever the waiting, the simulator
  excluded (its own process). Beside it, in the same run and at the same
  concurrency, the CPU per request of `ModelClient.respond` alone and of the
  bare SDK loop, and the runtime's CPU per step above that bare SDK loop: the
  SDK's own request cost is a floor the runtime cannot go under while every
  model call goes through it. Above it twice: the SDK as a user makes it
  (`AsyncAnthropic()`, over httpx), and the SDK over aiohttp as the runtime
  makes it (what the runtime adds to the same transport).

The machine has 2 cores and other work may be running: the figures are
indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anthropic import AsyncAnthropic, DefaultAioHttpClient

from events import SQLiteEventStore
from hooks import HookDispatcher
from runtime import (
    Agent,
    AgentSpec,
    AgentStats,
    ModelClient,
    Simulator,
    ToolContext,
    Workspace,
    prepare_workspace,
    worker_toolbox,
)
from runtime._client import SIMULATOR_API_KEY, _sdk_tracing

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
    repeats: int  # of the one-at-a-time baselines, per trial


FULL = Sizes(sequential=20, concurrency=(1, 100, 1_000), trials=3, repeats=1)
QUICK = Sizes(sequential=5, concurrency=(1, 100, 1_000), trials=1, repeats=3)


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
    root: Path,
    run: str,
    n: int,
    hooks: HookDispatcher | None,
    transcript: bool = True,
) -> dict[str, float]:
    """`n` scouts one after another, in a copy of the sample repository of their own."""
    workspace = await prepare_workspace(root / run)
    agents = await _agents(store, client, workspace, run, n, hooks, transcript)
    for agent in agents:
        outcome = await agent.run_until_idle()
        assert outcome.status == "completed", outcome.error
    return _split([a.stats for a in agents])


MIN_AGENTS = 25
"""A measurement of n agents at once runs rounds until this many have run (100 steps)."""


def rounds(n: int) -> int:
    return max(1, MIN_AGENTS // n)


async def concurrent(
    store: SQLiteEventStore, client: ModelClient, root: Path, run: str, n: int
) -> dict[str, float]:
    """`n` agents at once, `rounds(n)` times (the clocks run only while agents do).

    Each round's agents work in a fresh copy of the sample repository: the scouts
    grep the whole of it, so the notes of earlier rounds would make each round's
    tools slower than the last (1,000 more files a round at 1,000 agents)."""
    cpu = wall = 0.0
    stats = []
    for r in range(rounds(n)):
        workspace = await prepare_workspace(root / f"{run}r{r}")
        agents = await _agents(store, client, workspace, f"{run}r{r}", n, None)
        started_cpu, started = time.process_time(), time.perf_counter()
        outcomes = await asyncio.gather(*(a.run_until_idle() for a in agents))
        wall += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        assert {o.status for o in outcomes} == {"completed"}
        stats += [a.stats for a in agents]
    split = _split(stats)
    steps = split["steps"]
    return {"steps_s": steps / wall, "cpu_ms": cpu / steps * 1000, "wall_s": wall, **split}


@dataclass(frozen=True, slots=True)
class Requests:
    """One recorded scout's model requests, as `ModelClient.respond` and the SDK send them."""

    system: str
    conversations: list[list[dict[str, object]]]
    tools: list[dict[str, object]]
    calls: list[tuple[str, dict[str, object]]]  # the tool calls the model asked for, in order

    def sdk_params(self, client: ModelClient) -> list[dict[str, object]]:
        """The request bodies `ModelClient.respond` sends (cache breakpoints included)."""
        from runtime._client import _EPHEMERAL, _with_cache_control

        info = client.resolve("haiku")
        return [
            {
                "model": info.id,
                "max_tokens": min(8192, info.max_output),
                "system": [{"type": "text", "text": self.system, "cache_control": _EPHEMERAL}],
                "messages": _with_cache_control(messages),
                "tools": self.tools,
            }
            for messages in self.conversations
        ]


async def recorded(store: SQLiteEventStore, run: str) -> Requests:
    """The requests one scout of `run` made, rebuilt from its stream."""
    from runtime._conversation import AgentState

    events = await store.read_stream(f"agent-{run}-scout-0")
    system = events[0].data.system_prompt  # type: ignore[union-attr]
    state = AgentState(f"{run}-scout-0")
    conversations = []
    for event in events:
        if event.type == "ModelResponded":
            conversations.append([dict(m) for m in state.messages])
        state.apply(event)
    calls = [(e.data.name, e.data.input) for e in events if e.type == "ToolCallRequested"]  # type: ignore[union-attr]
    return Requests(system, conversations, worker_toolbox().definitions(), calls)


async def _timed(n: int, requests: int, send) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(CPU ms, wall ms) per request of `n` tasks, task k sending `requests` requests with
    `send(k, i)`, `rounds(n)` times."""

    async def task(k: int) -> None:
        for _ in range(rounds(n)):
            for i in range(requests):
                await send(k, i)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(task(k) for k in range(n)))
    done = n * requests * rounds(n)
    return (
        (time.process_time() - cpu) / done * 1000,
        (time.perf_counter() - wall) / done * 1000,
    )


async def baseline(client: ModelClient, requests: Requests, n: int = 1) -> tuple[float, float]:
    """(CPU, wall) ms per request through `ModelClient.respond`, `n` at once, no runtime."""
    convs = requests.conversations

    # each task as an agent of its own, as agents ask (when the client takes `agent`: an
    # older one, measured for a before/after, does not)
    named = "agent" in inspect.signature(ModelClient.respond).parameters

    async def send(k: int, i: int) -> None:
        await client.respond(
            model="haiku",
            system=requests.system,
            messages=convs[i],
            tools=requests.tools,
            **({"agent": f"baseline-{n}-{k}"} if named else {}),
        )

    return await _timed(n, len(convs), send)


async def bare_sdk(
    sdk: AsyncAnthropic,
    params: list[dict[str, object]],
    n: int = 1,
    *,
    how: Literal["create", "stream", "bytes"] = "create",
) -> tuple[float, float]:
    """(CPU, wall) ms per request of the SDK alone: `messages.create`, `messages.stream` and
    its final message, or a streamed `create` whose bytes are read and not parsed (the least
    a streamed request costs through the SDK)."""

    async def send(k: int, i: int) -> None:
        if how == "stream":
            async with sdk.messages.stream(**params[i]) as s:  # type: ignore[arg-type]
                await s.get_final_message()
        elif how == "bytes":
            raw = sdk.messages.with_streaming_response.create(**params[i], stream=True)  # type: ignore[call-overload]
            async with raw as response:
                async for _ in response.iter_bytes():
                    pass  # every byte read, none parsed: the floor of a streamed request
        else:
            await sdk.messages.create(**params[i])  # type: ignore[call-overload]

    return await _timed(n, len(params), send)


async def tools_alone(
    requests: Requests, root: Path, run: str, n: int, recorded_as: str
) -> tuple[float, float]:
    """(CPU, wall) ms per step of the recorded scout's tool calls alone, `n` scouts' at once,
    each in a fresh copy of the sample repository as `concurrent` gives them: the calls
    through the worker toolbox (validation and the tool), no model, no log, no hooks. The
    agent's own work (grep the repository, read, write its notes), which a step's CPU
    holds and the runtime does not add."""
    box = worker_toolbox()
    cpu = wall = 0.0

    async def scout(workspace: Workspace, tag: str) -> None:
        ctx = ToolContext(workspace=workspace, agent_id=f"scout-{tag}")
        for name, raw in requests.calls:
            # Its own notes file, as each scout of a round writes its own.
            own = {k: v.replace(recorded_as, tag) if isinstance(v, str) else v
                   for k, v in raw.items()}  # fmt: skip
            await box.call(name, own, ctx)

    for r in range(rounds(n)):
        workspace = Workspace(await prepare_workspace(root / f"{run}r{r}"))
        started_cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(scout(workspace, f"{run}r{r}-{k}") for k in range(n)))
        wall += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
    steps = n * len(requests.conversations) * rounds(n)
    return cpu / steps * 1000, wall / steps * 1000


def _above(rows: list[dict[str, float]], floors: list[tuple[float, float]]) -> float:
    """The median, trial by trial, of the runtime's CPU a step above a baseline's a request."""
    return statistics.median(r["cpu_ms"] - f[0] for r, f in zip(rows, floors, strict=True))


async def main(sizes: Sizes) -> None:
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess() as url:
        root = Path(tmp) / "repos"
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
            await sequential(store, client, root, "warm", 3, None)

            plain, bare, hooked = [], [], []
            base, sdk_create, sdk_stream, aio_create, aio_bytes = [], [], [], [], []
            # as a user makes one: the SDK's default transport (httpx); a 600 s timeout as
            # ModelClient.from_env's (5 s to connect is too short for 1,000 connections at once)
            sdk = AsyncAnthropic(api_key=SIMULATOR_API_KEY, base_url=url, timeout=600.0)
            # as ModelClient.from_env makes its own: the same SDK over aiohttp, and its own
            # spans off as the runtime has them here (runtime/_client.py, note 7), so that
            # "above it" stays what the runtime adds to the same SDK client
            aio = AsyncAnthropic(
                api_key=SIMULATOR_API_KEY,
                base_url=url,
                timeout=600.0,
                http_client=DefaultAioHttpClient(timeout=600.0),
                **_sdk_tracing(),
            )
            for t in range(sizes.trials):
                plain.append(
                    await sequential(store, client, root, f"plain{t}", sizes.sequential, None)
                )
                bare.append(
                    await sequential(store, client, root, f"bare{t}", sizes.sequential, None, False)
                )
                hooked.append(
                    await sequential(store, client, root, f"hooked{t}", sizes.sequential, hooks)
                )
                requests = await recorded(store, f"plain{t}")
                params = requests.sdk_params(client)
                for _ in range(sizes.repeats):
                    base.append(await baseline(client, requests))
                    sdk_create.append(await bare_sdk(sdk, params))
                    sdk_stream.append(await bare_sdk(sdk, params, how="stream"))
                    aio_create.append(await bare_sdk(aio, params))
                    aio_bytes.append(await bare_sdk(aio, params, how="bytes"))
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
            cpu = lambda rows: statistics.median(r[0] for r in rows)  # noqa: E731
            wall = lambda rows: statistics.median(r[1] for r in rows)  # noqa: E731
            print("\nbaselines, the same scout's requests one at a time (ms per request):")
            print(f"  {'':44}{'wall':>8}{'CPU':>8}")
            for label, rows in [
                ("ModelClient.respond, no agent, no log", base),
                ("bare SDK: AsyncAnthropic().messages.create", sdk_create),
                ("bare SDK: messages.stream + get_final_message", sdk_stream),
                ("bare SDK over aiohttp: messages.create", aio_create),
                ("bare SDK over aiohttp: streamed, bytes read", aio_bytes),
            ]:
                print(f"  {label:44}{wall(rows):>8.2f}{cpu(rows):>8.2f}")
            print(
                f"  runtime overhead (wall, no hooks) / ModelClient.respond: "
                f"{med(plain, 'overhead_ms') / wall(base):.2f}x\n"
            )

            print("all agents at once (one event loop, one SQLite log), ms per step:")
            print(
                f"  {'agents':>6}{'steps/s':>9}{'overhead':>10}{'appends':>10}{'model':>10}"
                f"{'wall s':>8} |{'CPU/step':>9}{'respond':>9}{'bare SDK':>9}{'above SDK':>10}"
                f"{'aiohttp':>9}{'above it':>9}{'tools':>7}{'above both':>11}"
            )
            for n in sizes.concurrency:
                rows, alone, floor, aio_floor, tools = [], [], [], [], []
                requests = await recorded(store, "plain0")
                params = requests.sdk_params(client)
                for t in range(sizes.trials):
                    rows.append(await concurrent(store, client, root, f"c{n}-{t}", n))
                    alone.append(await baseline(client, requests, n))
                    floor.append(await bare_sdk(sdk, params, n))
                    aio_floor.append(await bare_sdk(aio, params, n))
                    tools.append(await tools_alone(requests, root, f"t{n}-{t}", n, "plain0-0"))
                both = [(a[0] + b[0], 0.0) for a, b in zip(aio_floor, tools, strict=True)]

                print(
                    f"  {n:>6,}{med(rows, 'steps_s'):>9.0f}{med(rows, 'overhead_ms'):>10.2f}"
                    f"{med(rows, 'append_ms'):>10.2f}{med(rows, 'model_ms'):>10.2f}"
                    f"{med(rows, 'wall_s'):>8.2f} |{med(rows, 'cpu_ms'):>9.2f}"
                    f"{cpu(alone):>9.2f}{cpu(floor):>9.2f}{_above(rows, floor):>10.2f}"
                    f"{cpu(aio_floor):>9.2f}{_above(rows, aio_floor):>9.2f}"
                    f"{cpu(tools):>7.2f}{_above(rows, both):>11.2f}"
                )
            await sdk.close()
            await aio.close()
            print(
                "  left of |: as each agent sees it (waits included).\n"
                "  CPU/step: the runtime's overhead a step, the runtime process's CPU time per\n"
                "    step (one model call, its tool calls and events), simulator excluded.\n"
                "  respond, bare SDK: CPU per request of the same scout's requests, as many at once,\n"
                "    through ModelClient.respond and through AsyncAnthropic().messages.create.\n"
                "  above SDK: CPU/step minus bare SDK, same trial (median): the runtime's own\n"
                "    cost beyond the SDK's per-request floor, the SDK as a user makes it.\n"
                "  aiohttp, above it: the same with the SDK over aiohttp, as the runtime makes it\n"
                "    (runtime/_client.py, note 6): what the runtime adds to the same transport.\n"
                "  tools: CPU a step of the same scout's tool calls alone, as many scouts at once\n"
                "    (the toolbox's validation and the tools: the agent's own work, not the\n"
                "    runtime's); above both: CPU/step minus the SDK over aiohttp and the tools,\n"
                "    same trial (median): the runtime's own cost a step (the aim: under 2 ms)."
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
