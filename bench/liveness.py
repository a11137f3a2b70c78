"""What judging external sessions now (`_Judged`, api/_routes_views.py note 5) adds to a request.

Run from the repository root::

    .venv/bin/python bench/liveness.py                  # 8,560 agents, as a 1M-event log has
    .venv/bin/python bench/liveness.py --agents 1000

A log of `--agents` fleet agents (bench/views.py's) and `--sessions` Claude Code
sessions posted through the hook ingest (a tenth of them still working, the
rest ended) is served in process (httpx's ASGITransport). Each request is
answered from the render cache at the same position (what a dashboard's poll
mostly gets) or 304: what is left is what every request pays, the judgement
included. Rounds alternate the judgement as it is ("judged") with one that
judges nothing ("none", as before note 5): medians of each, and the ratio.

The machine is shared: the figures are indicative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
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


async def main(agents: int, sessions: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fleet.db"
        await _views.write_log(db, agents)
        app = create_app(ApiConfig(db=db, runtime=False))
        async with app.router.lifespan_context(app):
            assert app.services is not None
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                json_headers = {"Content-Type": "application/json"}
                for n in range(sessions):
                    session = f"00000000-0000-4000-8000-{n:012d}"
                    points = ["SessionStart", "UserPromptSubmit"]
                    points += [] if n % 10 == 0 else ["Stop", "SessionEnd"]
                    for point in points:
                        body = {"session_id": session, "transcript_path": "/t.jsonl",
                                "cwd": "/p", "hook_event_name": point, "prompt": "go"}  # fmt: skip
                        r = await http.post("/v1/hooks/ingest", content=json.dumps(body),
                                            headers=json_headers)  # fmt: skip
                        assert r.status_code == 201, r.text
                runner = app.services.runner
                await runner.wait_for(await app.services.store.head(), timeout=120)
                total = len(runner.state("agents")["agents"])
                print(f"{total:,} agents ({sessions} sessions, {sessions // 10} working), "
                      f"{runner.position:,} events; medians of {repeat} rounds, ms")  # fmt: skip
                some = next(iter(runner.state("agents")["agents"]))
                urls = [
                    "/v1/agents?limit=50",
                    f"/v1/agents/{some}",
                    "/v1/fleet",
                    "/v1/graph?latest_runs=8",
                ]
                judged_call = _Judged.__call__
                print(f"{'request':<26}{'judged':>9}{'none':>9}{'ratio':>7}{'304 j':>8}"
                      f"{'304 n':>8}")  # fmt: skip
                for url in urls:
                    await http.get(url)  # rendered once: the rounds are served from the cache
                    etag = {"If-None-Match": (await http.get(url)).headers["etag"]}
                    times: dict[str, list[float]] = {"j": [], "n": [], "j304": [], "n304": []}
                    for _ in range(repeat):
                        for mode, call in (("j", judged_call), ("n", _none)):
                            _Judged.__call__ = call  # type: ignore[method-assign]
                            for suffix, headers in (("", None), ("304", etag)):
                                start = time.perf_counter()
                                response = await http.get(url, headers=headers)
                                times[mode + suffix].append((time.perf_counter() - start) * 1e3)
                                assert response.status_code == (304 if suffix else 200)
                    _Judged.__call__ = judged_call  # type: ignore[method-assign]
                    med: dict[str, Any] = {k: statistics.median(v) for k, v in times.items()}
                    print(f"{url[:25]:<26}{med['j']:>9.3f}{med['n']:>9.3f}"
                          f"{med['j'] / med['n']:>7.2f}{med['j304']:>8.3f}{med['n304']:>8.3f}")  # fmt: skip
                judged = _Judged(app.services)
                alone = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    await judged()
                    alone.append((time.perf_counter() - start) * 1e3)
                print(f"the judgement alone: {statistics.median(alone):.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=8560, help="fleet agents in the log")
    parser.add_argument("--sessions", type=int, default=300, help="Claude Code sessions")
    parser.add_argument("--repeat", type=int, default=200, help="rounds per figure")
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.sessions, args.repeat))
