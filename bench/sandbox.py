"""The agents' sandbox, tried as an attacker would: every escape, its outcome, and the costs.

    .venv/bin/python bench/sandbox.py [--quick]

Runs each escape against the real worker tools (and a real command hook) in a
temporary folder and prints what happened: paths (`..`, absolute, symlink out,
symlinked folder, a folder swapped for a symlink mid-call), a hard link to a
file outside, fleet's control files and the log at a custom path, `setsid` and
SIGTERM-ignoring children of `Bash` and of a command hook, and runaway
regular expressions. Then the figures: grep on `(a+)+$` (RE2) against Python's
`re` on the same line (shorter lines: Python's time doubles with each `a`),
the memory a grep over a large file adds (streamed) against reading it whole
(what grep did before), and what the reaper costs per command, against a bare
shell in the same run. About a minute (`--quick`: a few seconds, smaller file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hooks import HookDispatcher, build_payload, load_settings, start_command, stop_command
from runtime import Sandbox, ToolContext, ToolError, Workspace, worker_toolbox
from runtime._search import compile_search, search

MARK = "FLEET_BENCH_MARK"
ROWS: list[tuple[str, str, str]] = []


def row(escape: str, tried: str, outcome: str) -> None:
    ROWS.append((escape, tried, outcome))
    print(f"| {escape} | {tried} | {outcome} |", flush=True)


def marked(mark: str) -> int:
    """How many live processes carry `MARK=mark` in their environment."""
    needle = f"{MARK}={mark}".encode()
    count = 0
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += needle in env and state != b"Z"
    return count


def outcome(result_error: bool, content: str, base: Path) -> str:
    first = content.splitlines()[0] if content else ""
    first = first.replace(str(base), "…").replace("|", "\\|")
    if len(first) > 100:
        first = first[:99] + "…"
    return ("refused: " if result_error else "**ALLOWED**: ") + first


async def paths(base: Path) -> None:
    root = base / "ws"
    outside = base / "outside"
    (root / "src").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("s3cret\n")
    (root / ".fleet").mkdir()
    (root / ".fleet" / "fleet.db").write_bytes(b"SQLite format 3\x00")
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "events.db").write_bytes(b"SQLite format 3\x00")
    os.symlink(outside, root / "link")
    os.symlink(outside / "secret.txt", root / "secret-link.txt")
    os.link(outside / "secret.txt", root / "hardlink.txt")
    ws = Workspace(root)
    ctx = ToolContext(workspace=ws, agent_id="bench")
    tools = worker_toolbox(log_path=root / "data" / "events.db")
    tries = [
        ("`..`", "Read", {"file_path": "../outside/secret.txt"}),
        ("absolute path", "Write", {"file_path": str(outside / "new.txt"), "content": "x"}),
        ("symlink out", "Read", {"file_path": "secret-link.txt"}),
        ("symlinked folder", "Write", {"file_path": "link/new.txt", "content": "x"}),
        ("hard link to a file outside", "Write", {"file_path": "hardlink.txt", "content": "x"}),
        ("the log", "Write", {"file_path": ".fleet/fleet.db", "content": "x"}),
        ("hook settings", "Write", {"file_path": ".fleet/settings.json", "content": "{}"}),
        ("git hook", "Write", {"file_path": ".git/hooks/pre-commit", "content": "x"}),
        ("Claude settings", "Write", {"file_path": ".claude/settings.local.json", "content": "{}"}),
        ("log at a custom path", "Write", {"file_path": "data/events.db-wal", "content": "x"}),
    ]
    for escape, tool, args in tries:
        result = await tools.call(tool, args, ctx)
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items() if k == "file_path")
        row(
            escape,
            f"`{tool}` {shown}".replace(str(base), "…"),
            outcome(result.is_error, result.content, base),
        )

    def swap(walked: tuple[str, ...], name: str) -> None:
        if name == "src":
            (root / "src").rename(root / "src-moved")
            os.symlink(outside, root / "src")

    try:
        Sandbox(on_step=swap).write(ws, "src/pwned.txt", b"x")
        what = "**ALLOWED**"
    except ToolError as e:
        what = outcome(True, str(e), base)
    row("race: folder swapped for a symlink mid-walk", "write `src/pwned.txt`", what)
    leaked = sorted(p.name for p in outside.iterdir())
    row("(after all of the above)", "files outside the workspace", ", ".join(leaked))


def escaper_script(mark: str, then: str) -> str:
    return (
        f"{MARK}={mark} setsid sleep 600 >/dev/null 2>&1 &\n"
        f"{MARK}={mark} sh -c 'trap \"\" TERM; while :; do sleep 1; done' >/dev/null 2>&1 &\n"
        f"sleep 0.3\n{then}\n"
    )


async def processes(base: Path) -> None:
    ws = Workspace(base)
    ctx = ToolContext(workspace=ws, agent_id="bench")
    tools = worker_toolbox(["Bash"])
    for then, timeout, when in (("exit 0", 60, "ends"), ("sleep 600", 2, "times out")):
        mark = uuid.uuid4().hex
        await tools.call(
            "Bash", {"command": escaper_script(mark, then), "timeout": timeout * 1000}, ctx
        )
        row(
            f"`setsid` + SIGTERM-ignoring child, command {when}",
            "`Bash`",
            f"processes left alive: {marked(mark)}",
        )
    for then, timeout, when in (("exit 0", 60, "ends"), ("sleep 600", 2, "times out")):
        mark = uuid.uuid4().hex
        script = base / f"hook-{mark}.sh"
        script.write_text("#!/bin/sh\ncat >/dev/null\n" + escaper_script(mark, then))
        script.chmod(0o755)
        group = {"hooks": [{"type": "command", "command": str(script), "timeout": timeout}]}
        async with HookDispatcher(load_settings({"PreToolUse": [group]})) as hooks:
            await hooks.dispatch(
                "PreToolUse",
                build_payload(
                    "PreToolUse",
                    session_id="s",
                    cwd="",
                    tool_name="Bash",
                    tool_input={},
                    tool_use_id="t",
                ),
            )
        row(
            f"`setsid` + SIGTERM-ignoring child, hook {when}",
            "command hook",
            f"processes left alive: {marked(mark)}",
        )


def regexes(base: Path) -> None:
    (base / "aaa.txt").write_text("a" * 28 + "!\n")
    ws = Workspace(base)
    pattern = compile_search("(a+)+$", ignore_case=False)
    started = time.perf_counter()
    found = search(
        ws,
        Sandbox(),
        "aaa.txt",
        pattern,
        max_results=10,
        deadline=time.monotonic() + 60,
        stop=threading.Event(),
    )
    re2_ms = (time.perf_counter() - started) * 1000
    row("`(a+)+$` on 28 `a` and `!`", "`grep`", f"{len(found.lines)} matches in {re2_ms:.1f} ms")
    runaway = compile_search(r"(?=a)(a+)+$", ignore_case=False)
    started = time.perf_counter()
    found = search(
        ws,
        Sandbox(),
        "aaa.txt",
        runaway,
        max_results=10,
        deadline=time.monotonic() + 2,
        stop=threading.Event(),
    )
    took = time.perf_counter() - started
    left = workers()
    row(
        "`(?=a)(a+)+$` (Python's re only) on the same line",
        "`grep`, 2 s cap",
        f"stopped ({found.stopped}) after {took:.1f} s; worker processes left: {left}",
    )


def workers() -> int:
    """Live regex worker processes started by this process."""
    me = str(os.getpid())
    count = 0
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
            with open(f"/proc/{name}/cmdline", "rb") as f:
                count += ppid == me and state != "Z" and b"_regex_worker.py" in f.read()
        except (OSError, ValueError):
            continue
    return count


def python_re_seconds(n: int) -> float:
    line = "a" * n + "!"
    started = time.perf_counter()
    re.search("(a+)+$", line)
    return time.perf_counter() - started


PEAK_PROBE = """
import sys, threading, time
sys.path.insert(0, {root!r})
from pathlib import Path
from runtime import Sandbox, Workspace
from runtime._search import compile_search, search
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")
ws = Workspace({folder!r})
regex = compile_search("needle", ignore_case=False)
before = hwm()
started = time.perf_counter()
if {whole!r}:
    data = Path({folder!r}, "big.txt").read_bytes()
    count = sum(1 for line in data.decode("utf-8", "replace").splitlines() if "needle" in line)
else:
    found = search(ws, Sandbox(), "big.txt", regex, max_results=10,
                   deadline=time.monotonic() + 600, stop=threading.Event())
    count = found.total
print(hwm() - before, count, time.perf_counter() - started)
"""


def memory(base: Path, megabytes: int) -> None:
    line = b"the quick brown fox jumps over the lazy dog, again and again\n"
    chunk = line * (1024 * 1024 // len(line))
    with open(base / "big.txt", "wb") as f:
        for _ in range(megabytes):
            f.write(chunk)
        f.write(b"a needle at the end\n")
    root = str(Path(__file__).resolve().parent.parent)
    added = {}
    for whole in (True, False):
        code = PEAK_PROBE.format(root=root, folder=str(base), whole=whole)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        added[whole] = (int(out[0]) / 2**20, int(out[1]), float(out[2]))
    (mb_whole, n_whole, s_whole), (mb_stream, n_stream, s_stream) = added[True], added[False]
    assert n_whole == n_stream == 1
    print(
        f"\ngrep over a {megabytes} MB file: peak memory added {mb_stream:.1f} MB streamed "
        f"({s_stream:.1f} s, RE2 in 1 MiB blocks), {mb_whole:.0f} MB when read whole and split "
        f"into lines as grep did before ({s_whole:.1f} s)"
    )


def dense(base: Path) -> None:
    """Per matching line: a search where every line matches, RE2 against Python's re."""
    line = b"the quick brown fox jumps over the lazy dog, again and again\n"
    data = line * (5 * 2**20 // len(line))
    (base / "dense.txt").write_bytes(data)
    lines = data.count(b"\n")
    started = time.perf_counter()
    found = search(
        Workspace(base),
        Sandbox(),
        "dense.txt",
        compile_search("fox.*dog", ignore_case=False),
        max_results=10,
        deadline=time.monotonic() + 600,
        stop=threading.Event(),
    )
    ours = time.perf_counter() - started
    assert found.total == lines
    pattern = re.compile(b"fox.*dog")
    started = time.perf_counter()
    count = sum(1 for one in data.split(b"\n") if pattern.search(one))
    theirs = time.perf_counter() - started
    assert count == lines
    print(
        f"a 5 MB file where all {lines} lines match `fox.*dog`: grep {ours * 1e6 / lines:.1f} µs "
        f"per line, Python's re line by line {theirs * 1e6 / lines:.1f} µs"
    )


async def command_cost(rounds: int) -> None:
    async def once(contained: bool) -> float:
        started = time.perf_counter()
        if contained:
            proc = await start_command("true")
            try:
                await proc.wait()
            finally:
                await stop_command(proc)
        else:
            bare = await asyncio.create_subprocess_exec("/bin/sh", "-c", "true")
            await bare.wait()
        return (time.perf_counter() - started) * 1000

    contained, bare = [], []
    for _ in range(rounds):
        contained.append(await once(True))
        bare.append(await once(False))
    c, b = statistics.median(contained), statistics.median(bare)
    print(
        f"a command `true`: {c:.1f} ms under the reaper, {b:.1f} ms bare `sh -c` "
        f"(median of {rounds}, interleaved; the difference is one Python start with -I -S)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller file, fewer rounds")
    args = parser.parse_args()
    print("| escape tried | how | outcome |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        await paths(base / "paths")
        (base / "procs").mkdir()
        await processes(base / "procs")
        (base / "regex").mkdir()
        regexes(base / "regex")
        print()
        for n in (18, 20, 22):
            print(f"Python's re, `(a+)+$` on {n} `a` and `!`: {python_re_seconds(n):.2f} s")
        (base / "mem").mkdir()
        memory(base / "mem", 20 if args.quick else 200)
        dense(base / "mem")
        await command_cost(20 if args.quick else 100)


if __name__ == "__main__":
    asyncio.run(main())
