"""grep: RE2 in linear time, files streamed in blocks, and a Python-only pattern in a worker
process that is killed at the deadline or when the call is cancelled."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from pathlib import Path

import pytest
from rt_support import watching_the_loop

from runtime import Sandbox, Toolbox, ToolContext, Workspace, worker_toolbox
from runtime._file_tools import Grep
from runtime._search import BLOCK_BYTES, compile_search, search

# Backtracks for ever in Python's re on a line of a's ending in "!"; RE2 refuses the
# look-ahead, so this one can only run in the worker process.
RUNAWAY_PYTHON_ONLY = r"(?=a)(a+)+$"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("def count(x):\n    return x  # count\nrecount = count\n")
    (root / "aaa.txt").write_text("a" * 40 + "!\n")
    return Workspace(root)


def ctx(ws: Workspace) -> ToolContext:
    return ToolContext(workspace=ws, agent_id="a1")


def workers() -> list[int]:
    """Pids of this process's live regex worker processes."""
    me = str(os.getpid())
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            continue
        if ppid == me and state != "Z" and b"_regex_worker.py" in cmdline:
            found.append(int(name))
    return found


async def test_a_catastrophic_pattern_runs_in_linear_time(ws: Workspace) -> None:
    """With Python's re this search would not end before the test's timeout."""
    tools = worker_toolbox()
    none = await tools.call(
        "Grep", {"output_mode": "content", "pattern": "(a+)+$", "path": "aaa.txt"}, ctx(ws)
    )
    (ws.root / "more.txt").write_text("a" * 40 + "\n")
    some = await tools.call("Grep", {"output_mode": "content", "pattern": "(a+)+$"}, ctx(ws))
    assert none.content == "no matches"
    assert some.content == "more.txt:1:" + "a" * 40


async def test_look_around_and_backreferences_still_work_in_pythons_syntax(
    ws: Workspace,
) -> None:
    tools = worker_toolbox()
    words = await tools.call(
        "Grep", {"output_mode": "content", "pattern": r"(?<!\w)count(?!\w)"}, ctx(ws)
    )
    twice = await tools.call("Grep", {"output_mode": "content", "pattern": r"(\w)\1"}, ctx(ws))
    assert words.content.splitlines() == [
        "app.py:1:def count(x):",
        "app.py:2:    return x  # count",
        "app.py:3:recount = count",
    ]
    assert twice.content == "aaa.txt:1:" + "a" * 40 + "!"
    assert workers() == []


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("^def", ["1:def count(x):"]),
        (r"count$", ["2:    return x  # count", "3:recount = count"]),
        (r"count\Z", ["2:    return x  # count", "3:recount = count"]),
        (r"\Acount|\Arecount", ["3:recount = count"]),
        (r"x\s+return", []),  # never across two lines
        ("COUNT", []),
    ],
)
async def test_anchors_match_at_each_line_and_no_match_spans_two(
    ws: Workspace, pattern: str, expected: list[str]
) -> None:
    result = await worker_toolbox().call(
        "Grep", {"output_mode": "content", "pattern": pattern, "path": "app.py"}, ctx(ws)
    )
    assert result.content.splitlines() == ([f"app.py:{e}" for e in expected] or ["no matches"])


async def test_case_insensitive_with_i(ws: Workspace) -> None:
    result = await worker_toolbox().call(
        "Grep",
        {"output_mode": "content", "pattern": "COUNT", "path": "app.py", "-i": True},
        ctx(ws),
    )
    assert len(result.content.splitlines()) == 3


async def test_a_pattern_neither_engine_takes_is_an_input_error(ws: Workspace) -> None:
    result = await worker_toolbox().call(
        "Grep", {"output_mode": "content", "pattern": "(unclosed"}, ctx(ws)
    )
    assert result.is_error
    assert result.content == (
        "invalid input for Grep: pattern: not a valid regular expression: "
        "missing ), unterminated subpattern at position 0"
    )


async def test_line_numbers_are_right_across_blocks_and_in_a_line_longer_than_a_block(
    ws: Workspace,
) -> None:
    lines = [f"row {i:<30}" + (" needle" if i % 9_999 == 0 else "") for i in range(1, 60_001)]
    lines[30_000] = "x" * (2 * BLOCK_BYTES + 10) + " needle"  # one line over two blocks long
    text = "\n".join(lines) + "\n"
    assert len(text) > 3 * BLOCK_BYTES
    (ws.root / "big.txt").write_text(text)
    result = await worker_toolbox().call(
        "Grep", {"output_mode": "content", "pattern": "needle", "path": "big.txt"}, ctx(ws)
    )
    expected = [i + 1 for i, line in enumerate(lines) if re.search("needle", line)]
    assert [int(line.split(":")[1]) for line in result.content.splitlines()] == expected


async def test_binary_files_are_skipped(ws: Workspace) -> None:
    (ws.root / "blob.bin").write_bytes(b"\x00\x01count\n")
    result = await worker_toolbox().call(
        "Grep", {"output_mode": "content", "pattern": "count"}, ctx(ws)
    )
    assert "blob.bin" not in result.content


def test_a_python_only_search_past_its_deadline_stops_and_its_worker_is_killed(
    ws: Workspace,
) -> None:
    regex = compile_search(RUNAWAY_PYTHON_ONLY, ignore_case=False)
    found = search(
        ws,
        Sandbox(),
        "aaa.txt",
        regex,
        max_results=10,
        deadline=time.monotonic() + 1,
        stop=threading.Event(),
    )
    assert found.stopped == "deadline"
    assert workers() == []


def test_a_search_told_to_stop_searches_nothing_more(ws: Workspace) -> None:
    stop = threading.Event()
    stop.set()
    regex = compile_search("count", ignore_case=False)
    found = search(
        ws, Sandbox(), ".", regex, max_results=10, deadline=time.monotonic() + 60, stop=stop
    )
    assert (found.stopped, found.lines) == ("cancelled", [])


async def test_cancelling_a_grep_kills_its_worker_process(ws: Workspace) -> None:
    call = asyncio.create_task(
        worker_toolbox().call(
            "Grep", {"output_mode": "content", "pattern": RUNAWAY_PYTHON_ONLY}, ctx(ws)
        )
    )
    async with asyncio.timeout(60):
        while not workers():
            await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    async with asyncio.timeout(60):
        while workers():
            await asyncio.sleep(0.02)


async def test_a_grep_past_its_time_cap_says_so(ws: Workspace) -> None:
    tools = Toolbox([Grep(Sandbox(), max_seconds=0)])
    result = await tools.call("Grep", {"output_mode": "content", "pattern": "count"}, ctx(ws))
    assert result.is_error
    assert result.content == "no matches\n[... search stopped after 0s: narrow the path or glob]"


# -- context lines (-A, -B, -C) -------------------------------------------------------


class CountingSandbox(Sandbox):
    """A sandbox that counts the files opened by name (the context lines' reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    def open_file(self, ws: Workspace, path: str) -> tuple[int, str]:
        self.opened.append(path)
        return super().open_file(ws, path)


def expected_context(rel: str, lines: list[str], hit: re.Pattern[str], c: int) -> list[str]:
    """ripgrep's -C output for one file, computed the plain way."""
    hits = [i for i, line in enumerate(lines, start=1) if hit.search(line)]
    shown = sorted({j for i in hits for j in range(max(1, i - c), min(len(lines), i + c) + 1)})
    out: list[str] = []
    for k, j in enumerate(shown):
        if k and j != shown[k - 1] + 1:
            out.append("--")
        sep = ":" if j in hits else "-"
        out.append(f"{rel}{sep}{j}{sep}{lines[j - 1]}")
    return out


async def test_context_lines_of_many_hits_read_the_file_once(ws: Workspace) -> None:
    # Hits every 7th line, groups that touch and that do not, CRLF lines, no final newline.
    lines = [f"line {i} {'hit' if i % 7 == 0 or i in (500, 501) else 'x'}" for i in range(1, 3001)]
    body = "\n".join(lines[:1000]) + "\n" + "\r\n".join(lines[1000:2000]) + "\r\n"
    (ws.root / "big.txt").write_text(body + "\n".join(lines[2000:]))
    box = CountingSandbox()
    tools = Toolbox([Grep(box)])
    result = await tools.call(
        "Grep",
        {
            "pattern": "hit",
            "path": "big.txt",
            "output_mode": "content",
            "-C": 2,
            "head_limit": 1000,
        },
        ctx(ws),
    )
    assert not result.is_error, result.content
    assert result.content.splitlines() == expected_context("big.txt", lines, re.compile("hit"), 2)
    assert box.opened == ["big.txt"]  # once, not once a hit (it took hits x size)


def test_context_lines_stop_when_the_search_is_told_to(ws: Workspace) -> None:
    from runtime._file_tools import _with_context

    (ws.root / "big.txt").write_text("".join(f"{i} hit\n" for i in range(1, 20_001)))
    regex = compile_search("hit", ignore_case=False)
    found = search(
        ws, Sandbox(), "big.txt", regex, max_results=20_000,
        deadline=time.monotonic() + 600, stop=threading.Event(),
    )  # fmt: skip
    assert found.stopped is None and len(found.hits) == 20_000
    shown = _with_context(Sandbox(), ws, found, 1, 1, lambda: "cancelled")
    assert found.stopped == "cancelled"
    assert len(shown) < 1_000  # it stopped within its first few hundred lines


async def test_a_huge_pattern_is_compiled_off_the_event_loop(ws: Workspace) -> None:
    # Compiled on the loop, a 340 KB Python-only pattern stopped every agent and the
    # server for seconds. Ticks of the loop during the call show whether it ran meanwhile.
    pattern = "(?=w)" + "|".join(f"w{i}" for i in range(50_000))
    result, longest, took = await watching_the_loop(
        worker_toolbox().call("Grep", {"pattern": pattern}, ctx(ws))
    )
    assert result.content == "no matches"
    assert longest < took / 2, "the loop stood still for most of the call"
