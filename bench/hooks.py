"""Hook overhead per call, for each kind of hook, against the no-hook dispatch.

    .venv/bin/python bench/hooks.py [--quick]

Prints the median and p99 time of one `HookDispatcher.dispatch()` at PreToolUse
with one trivial hook of each kind (in-process sync, in-process async, shell
command, HTTP to a uvicorn server on 127.0.0.1 in another thread), the no-hook
dispatch as the baseline, and `build_payload()`. Aim: under 50 µs in process.
Figures are indicative: a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hooks import HookDispatcher, build_payload, load_settings

DENY = {"hookSpecificOutput": {"permissionDecision": "deny", "permissionDecisionReason": "no"}}


def payload() -> dict[str, Any]:
    return build_payload(
        "PreToolUse",
        session_id="bench",
        cwd="",
        agent_id="builder-1",
        parent_id="orch",
        run_id="run-1",
        tool_name="Bash",
        tool_input={"command": "ls -la"},
        tool_use_id="toolu_1",
        usage={"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.01},
    )


async def measure(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    """Microseconds per call, `n` calls after a warm-up."""
    for _ in range(min(n // 10 + 1, 200)):
        await call()
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        started = clock()
        await call()
        out.append((clock() - started) / 1000)
    return out


def row(name: str, samples: list[float], baseline: float | None) -> str:
    median = statistics.median(samples)
    p99 = statistics.quantiles(samples, n=100)[98]
    over = "" if baseline is None else f"{median - baseline:>12.1f}"
    return f"{name:<34}{len(samples):>8}{median:>12.1f}{p99:>12.1f}{over}"


class HttpServer:
    """uvicorn on 127.0.0.1 in its own thread and loop, so it does not share our loop."""

    def __init__(self) -> None:
        async def hook(request: Request) -> Response:
            await request.body()
            return Response(status_code=204)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


async def main(quick: bool) -> None:
    fast, slow_n, http_n = (2_000, 30, 200) if quick else (20_000, 200, 1_000)
    p = payload()
    print(f"hook overhead per dispatch at PreToolUse (µs); python {sys.version.split()[0]}")
    print(f"{'case':<34}{'calls':>8}{'median':>12}{'p99':>12}{'- baseline':>12}")

    async with HookDispatcher() as none:
        base_samples = await measure(lambda: none.dispatch("PreToolUse", p), fast)
    baseline = statistics.median(base_samples)
    print(row("no hook (baseline)", base_samples, None))

    build = await measure(_as_async(payload), fast)
    print(row("build_payload() (not in dispatch)", build, None))

    async def noop_async(payload: dict[str, Any]) -> None:
        return None

    def noop_sync(payload: dict[str, Any]) -> None:
        return None

    def deny_sync(payload: dict[str, Any]) -> dict[str, Any]:
        return DENY

    cases: list[tuple[str, list[Callable[[dict[str, Any]], object]]]] = [
        ("python sync -> None", [noop_sync]),
        ("python sync -> deny dict", [deny_sync]),
        ("python async -> None", [noop_async]),
        ("python sync x3 (one dispatch)", [noop_sync] * 3),
        ("python async x3 (one dispatch)", [noop_async] * 3),
    ]
    for name, fns in cases:
        async with HookDispatcher() as d:
            for fn in fns:
                d.add_python("PreToolUse", fn)
            samples = await measure(lambda: d.dispatch("PreToolUse", p), fast)
        print(row(name, samples, baseline))

    command = load_settings(
        {"PreToolUse": [{"hooks": [{"type": "command", "command": "cat >/dev/null"}]}]}
    )
    async with HookDispatcher(command) as d:
        samples = await measure(lambda: d.dispatch("PreToolUse", p), slow_n)
    print(row("command `cat >/dev/null`", samples, baseline))

    with HttpServer() as url:
        http = load_settings({"PreToolUse": [{"hooks": [{"type": "http", "url": url}]}]})
        async with HookDispatcher(http) as d:
            samples = await measure(lambda: d.dispatch("PreToolUse", p), http_n)
        print(row("http POST (uvicorn, loopback)", samples, baseline))
    print("indicative figures: a shared 2-core machine")


def _as_async(fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return fn()

    return call


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    asyncio.run(main(parser.parse_args().quick))
