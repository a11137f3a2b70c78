"""Helpers of the replay tests (imported by the test modules and the conftest)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events import EventStore
from runtime import (
    RuntimeOptions,
    load_pattern,
    open_runtime,
    prepare_workspace,
    run_orchestrator,
    run_pattern,
)

TASK = "rename `count_words` to `word_count` everywhere"
VIEWS = ("agents", "fleet", "graph", "board", "runs")


@dataclass(frozen=True)
class Recording:
    """A recorded run in a closed log that tests must not write to (copy it first)."""

    db: Path
    run_id: str
    workspace: Path
    git_head: str
    events: int
    diff: str  # `git diff` of the workspace against the commit the run started from


async def _git(cwd: Path, *args: str) -> str:
    """The output of `git ARGS` in `cwd`; AssertionError when git fails."""
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def record(base: Path, pattern: str | None, *, git: bool = True) -> Recording:
    """Record one run (a pattern, or the orchestrator agent when None) on the sample repository."""
    workspace = await prepare_workspace(base / "repo", git=git)
    head = (await _git(workspace, "rev-parse", "HEAD")).strip() if git else ""
    options = RuntimeOptions(db=base / "fleet.db", workspace=workspace, env={})
    async with open_runtime(options) as rt:
        if pattern is None:
            result = await run_orchestrator(rt.fleet, TASK)
        else:
            result = await run_pattern(rt.fleet, load_pattern(pattern), TASK)
        assert result.status == "completed", result.error
        events = await rt.store.head()
    diff = await _git(workspace, "diff", head) if git else ""
    return Recording(base / "fleet.db", result.run_id, workspace, head, events, diff)


git = _git


def lines_of(path: Path) -> list[bytes]:
    """An export's lines, each with its newline."""
    return path.read_bytes().splitlines(keepends=True)


def reseal(lines: list[bytes]) -> bytes:
    """An export with its trailer recomputed over `lines` (all but a trailer): a forger's file."""
    body = [line for line in lines if b'"end":"fleet-run"' not in line]
    digest = hashlib.sha256(b"".join(body)).hexdigest()
    events = [json.loads(line) for line in body[1:]]
    streams: dict[str, int] = {}
    for event in events:
        streams[event["stream_id"]] = streams.get(event["stream_id"], 0) + 1
    trailer = {"end": "fleet-run", "events": len(events), "streams": streams, "sha256": digest}
    return b"".join(body) + json.dumps(trailer, separators=(",", ":")).encode() + b"\n"


async def stream_rows(store: EventStore, stream_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each stream's events as JSON, without their positions (for comparing two logs)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for stream_id in stream_ids:
        rows = []
        for event in await store.read_stream(stream_id):
            row = event.to_json_dict()
            del row["position"]
            rows.append(row)
        out[stream_id] = rows
    return out
