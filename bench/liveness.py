"""What judging external sessions now (`_Judged`, api/_routes_views.py note 5) adds to a request.

Run from the repository root::

    .venv/bin/python bench/liveness.py                  # 8,560 agents, as a 1M-event log has
    .venv/bin/python bench/liveness.py --agents 1000
    .venv/bin/python bench/liveness.py --log /tmp/fleet-bench-projections/runs-v2-1000000.db
                                                        # a log bench/projections.py wrote

A log of `--agents` fleet agents (bench/views.py's; with `--log`, a copy of
that log) and `--sessions` Claude Code sessions posted through the hook
ingest (a tenth of them still working, the rest ended) is served in process
(httpx's ASGITransport). Each request is answered from the render cache at the
same position (what a dashboard's poll mostly gets) or 304: what is left is
what every request pays, the judgement included. Rounds alternate the
judgement as it is ("judged"), the first one, which looked at every card
("every card"), and none ("none", as before note 5), each first in turn:
medians of each, and the ratio to none; then each judgement alone.

The machine is shared: the figures are indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path, and bench/projections.py
# would shadow the `projections` package: drop it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import httpx

from api import ApiConfig, create_app
from api._routes_views import _Judged

_spec = importlib.util.spec_from_file_location("bench_views", Path(__file__).with_name("views.py"))
assert _spec is not None
assert _spec.loader is not None
_views = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_views)


async def _none(self: _Judged) -> frozenset[str]:
    self.statuses = {}
    return frozenset()


async def _every_card(self: _Judged) -> frozenset[str]:
    """The judgement as it was first: every card looked at, on every request."""
    return self.judge(self._app.runner.state("agents")["agents"].values())


async def post_sessions(http: httpx.AsyncClient, sessions: int) -> None:
    """`sessions` Claude Code sessions through the hook ingest, a tenth of them working."""
    headers = {"Content-Type": "application/json"}
    for n in range(sessions):
        session = f"00000000-0000-4000-8000-{n:012d}"
        points = ["SessionStart", "UserPromptSubmit"]
        points += [] if n % 10 == 0 else ["Stop", "SessionEnd"]
        for point in points:
            body = {"session_id": session, "transcript_path": f"/t/{session}.jsonl",
                    "cwd": "/p", "hook_event_name": point, "prompt": "go"}  # fmt: skip
            r = await http.post("/v1/hooks/ingest", content=json.dumps(body), headers=headers)
            assert r.status_code == 201, r.text


async def main(agents: int, sessions: int, repeat: int, log: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fleet.db"
        if log is None:
            await _views.write_log(db, agents)
        else:
            await asyncio.to_thread(shutil.copyfile, log, db)
        app = create_app(ApiConfig(db=db, runtime=False))
        async with app.router.lifespan_context(app):
            assert app.services is not None
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                await post_sessions(http, sessions)
                runner = app.services.runner
                await runner.wait_for(await app.services.store.head(), timeout=600)
                total = len(runner.state("agents")["agents"])
                print(f"{total:,} agents (with {sessions} sessions, {sessions // 10} working), "
                      f"{runner.position:,} events; medians of {repeat} rounds, ms")  # fmt: skip
                some = next(iter(runner.state("agents")["agents"]))
                urls = [
                    "/v1/agents?limit=50",
                    f"/v1/agents/{some}",
                    "/v1/fleet",
                    "/v1/graph?latest_runs=8",
                ]
                judged_call = _Judged.__call__
                modes = {"judged": judged_call, "every card": _every_card, "none": _none}
                print("from the render cache (200), then 304; after each, the ratio to none")
                print(f"{'request':<30}" + "".join(f"{m:>12}{'x':>6}" for m in modes))
                for url in urls:
                    await http.get(url)  # rendered once: the rounds are served from the cache
                    etag = {"If-None-Match": (await http.get(url)).headers["etag"]}
                    for suffix, headers, code in (("", None, 200), (" 304", etag, 304)):
                        times: dict[str, list[float]] = {m: [] for m in modes}
                        order = list(modes.items())
                        for i in range(repeat):  # each first in turn: no mode follows one alone
                            for mode, call in order[i % 3 :] + order[: i % 3]:
                                _Judged.__call__ = call  # type: ignore[method-assign]
                                start = time.perf_counter()
                                response = await http.get(url, headers=headers)
                                times[mode].append((time.perf_counter() - start) * 1e3)
                                assert response.status_code == code
                        _Judged.__call__ = judged_call  # type: ignore[method-assign]
                        med: dict[str, Any] = {m: statistics.median(v) for m, v in times.items()}
                        print(f"{url[:25] + suffix:<30}" + "".join(
                            f"{med[m]:>12.3f}{med[m] / med['none']:>6.2f}" for m in modes))  # fmt: skip
                for mode, call in modes.items():
                    judged = _Judged(app.services)
                    alone = []
                    for _ in range(repeat):
                        start = time.perf_counter()
                        await call(judged)
                        alone.append((time.perf_counter() - start) * 1e3)
                    print(f"the judgement alone, {mode}: {statistics.median(alone):.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=8560, help="fleet agents in the log")
    parser.add_argument("--sessions", type=int, default=300, help="Claude Code sessions")
    parser.add_argument("--repeat", type=int, default=200, help="rounds per figure")
    parser.add_argument("--log", type=Path, help="serve this log instead of writing one")
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.sessions, args.repeat, args.log))
