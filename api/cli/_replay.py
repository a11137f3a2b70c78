"""`fleet replay`, `fleet export`, `fleet import`: look back at a run, move it, run it again.

    fleet replay RUN                          the run's timeline
    fleet replay RUN --at 120 --view board    a read model as it was at position 120
    fleet replay RUN --rerun                  re-execute it offline, report divergences
    fleet export RUN -o run.jsonl             the run as checksummed JSON Lines
    fleet export RUN --sign                   ... signed with $FLEET_EXPORT_KEY (HMAC-SHA256)
    fleet import run.jsonl --db other.db      into another log (projections rebuilt)
    fleet import run.jsonl --verify           only if signed with $FLEET_EXPORT_KEY

RUN is a run id as `fleet runs` lists it (a `run-` prefix is accepted either way).
Standard library only at import (`api/cli/__init__.py`, note 1): each command
imports the log, the runtime and rich when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._common import (
    add_common,
    console,
    log_missing,
    log_position,
    print_json,
    resolve_db,
    resolve_run,
    shell_word,
)

if TYPE_CHECKING:
    from events import EventStore
    from projections import Timeline
    from runtime.replay import Divergence, RerunResult

__all__ = ["KEY_ENV", "VIEW_NAMES", "configure", "export_key"]

KEY_ENV = "FLEET_EXPORT_KEY"

VIEW_NAMES = ("agents", "fleet", "graph", "board", "runs")

_KIND_STYLE = {
    "run": "bold",
    "agent": "cyan",
    "step": "white",
    "tool": "green",
    "hook": "magenta",
    "wait": "yellow",
    "task": "blue",
    "compaction": "yellow",
    "divergence": "bold red",
}


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `replay`, `export` or `import`."""
    if command == "replay":
        _add_replay_arguments(parser)
        parser.set_defaults(func=_replay_command)
    elif command == "export":
        parser.add_argument("run", metavar="RUN", help="the run id (see `fleet runs`)")
        parser.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            help="the file to write ('-': stdout; default RUN.jsonl)",
        )
        parser.add_argument(
            "--sign",
            action="store_true",
            help=f"sign it with the key in ${KEY_ENV} (HMAC-SHA256), for `fleet import --verify`",
        )
        add_common(parser)
        parser.set_defaults(func=_export_command)
    else:
        parser.add_argument("file", metavar="FILE", help="the export ('-': stdin)")
        parser.add_argument(
            "--verify",
            action="store_true",
            help=f"refuse the file unless it is signed with the key in ${KEY_ENV}",
        )
        add_common(parser)
        parser.set_defaults(func=_import_command)


def _add_replay_arguments(replay: argparse.ArgumentParser) -> None:
    replay.description = (
        "Show a run's timeline (agents, steps, tool calls, hook decisions, waits); with "
        "--at, a read model as it was at that position of the log; with --rerun, run it "
        "again offline: model answers come from the log, tools and hooks run anew, and "
        "every divergence from the recording is reported."
    )
    replay.add_argument("run", metavar="RUN", help="the run id (see `fleet runs`)")
    replay.add_argument(
        "--at", type=log_position, metavar="POSITION", help="show a read model as of this position"
    )
    replay.add_argument(
        "--view", choices=VIEW_NAMES, default=None, help="the read model for --at (default: agents)"
    )
    replay.add_argument("--rerun", action="store_true", help="re-execute the run offline")
    replay.add_argument("--workspace", metavar="DIR", help="--rerun: where to put the fresh copy")
    replay.add_argument(
        "--source", metavar="DIR", help="--rerun: copy this repository, not the recorded one"
    )
    replay.add_argument(
        "--hooks", metavar="PATH", help="--rerun: hooks settings.json (default: the project's)"
    )
    replay.add_argument(
        "--pattern", metavar="FILE", help="--rerun: the pattern file of a custom pattern"
    )
    replay.add_argument(
        "--exact", action="store_true", help="--rerun: compare tool results raw (mask nothing)"
    )
    add_common(replay)


def _error(message: str) -> int:
    print(f"fleet: error: {message}", file=sys.stderr)
    return 1


class KeyMissing(Exception):
    """No usable signing key in the environment (the message says why)."""


def export_key() -> bytes:
    """The signing key from `$FLEET_EXPORT_KEY` (UTF-8). Raises `KeyMissing`."""
    import os

    from events import MIN_KEY_BYTES

    key = os.environ.get(KEY_ENV, "").encode()
    if not key:
        raise KeyMissing(f"set {KEY_ENV} to the shared signing key (e.g. `openssl rand -hex 32`)")
    if len(key) < MIN_KEY_BYTES:
        raise KeyMissing(f"{KEY_ENV} holds {len(key)} bytes; a signing key needs {MIN_KEY_BYTES}")
    return key


def _existing_db(args: argparse.Namespace) -> Path | str | None:
    db = resolve_db(args.db)
    return None if log_missing(db) else db


@contextlib.asynccontextmanager
async def _open(
    db: Path | str, *, projections: bool, readonly: bool | Literal["if-needed"] = False
) -> AsyncIterator[tuple[EventStore, Any]]:
    from events import open_store
    from projections import ProjectionRunner

    from ._common import open_to_read

    opened = open_to_read(db) if readonly == "if-needed" else open_store(db, readonly=readonly)
    async with opened as store:
        if not projections:
            yield store, None
            return
        async with ProjectionRunner(store) as runner:
            yield store, runner


# -- replay -------------------------------------------------------------------------------


def _replay_command(args: argparse.Namespace) -> int:
    db = _existing_db(args)
    if db is None:
        return _error(f"no log at {resolve_db(args.db)} (give it with --db or FLEET_DB)")
    if args.rerun and args.at is not None:
        return _error("--rerun and --at do not go together")
    if args.view is not None and args.at is None:
        return _error("--view needs --at POSITION")
    if args.rerun:
        return asyncio.run(_rerun(args, db))
    if args.at is not None:
        return asyncio.run(_view_at(args, db))
    return asyncio.run(_timeline(args, db))


async def _timeline(args: argparse.Namespace, db: Path | str) -> int:
    from projections import load_timeline

    async with _open(db, projections=False, readonly=True) as (store, _):
        timeline = await load_timeline(store, await resolve_run(store, args.run))
    if args.json:
        print_json(timeline.to_json())
    else:
        _print_timeline(timeline)
    return 0


def _print_timeline(t: Timeline) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    run_id, pattern = escape(t.run_id), escape(str(t.pattern))
    how = f"pattern [bold]{pattern}[/]" if t.pattern != "orchestrator" else "the orchestrator"
    took = f" in {t.duration_ms / 1000:.2f} s" if t.duration_ms is not None else ""
    out.rule(f"run [bold]{run_id}[/]: {how}, {escape(t.status)}{took}")
    out.print(f"[bold]task[/]: {escape(t.task)}")
    if t.replay_of:
        out.print(
            f"re-execution of [bold]{escape(t.replay_of)}[/] (model answers replayed from its "
            f"log): {t.divergences} divergence(s) recorded"
        )
    elif t.simulated:
        out.print("[yellow]model answers by the offline simulator (scripted, not Claude)[/]")
    if t.agents:
        names = ", ".join(f"{a['name']} ({a['role']}, {a['steps']} steps)" for a in t.agents)
        out.print(f"[bold]agents[/]: {escape(names)}")
    table = Table(show_edge=False, pad_edge=False, expand=False)
    for column in ("pos", "+s", "agent", "what"):
        table.add_column(column, no_wrap=column != "what", overflow="fold")
    for e in t.entries:
        style = _KIND_STYLE.get(e.kind, "")
        offset = (e.at - t.started_at).total_seconds()
        table.add_row(
            str(e.position),
            f"{offset:.3f}",
            escape(e.agent),
            f"[{style}]{escape(e.text)}[/]" if style else escape(e.text),
        )
    out.print(table)
    out.print(
        f"positions {t.first_position}..{t.last_position}; a read model at any of them: "
        f"[bold]fleet replay {run_id} --at POSITION --view agents|fleet|graph|board|runs[/]"
    )


_SCOPED = frozenset({"agents", "board", "runs"})
"""The views `--at` shows for the run named only; fleet and graph are the whole log's."""


def _of_run(view: str, data: dict[str, Any], run_id: str) -> dict[str, Any]:
    """`data` (view `view`) cut to the run `run_id`'s agents, tasks or card (`_SCOPED`)."""
    if view == "agents":
        agents = [a for a in data["agents"] if a.get("run_id") == run_id]
        return {**data, "agents": agents, "count": len(agents)}
    if view == "board":
        columns = [
            {**c, "tasks": [t for t in c["tasks"] if t.get("run_id") == run_id]}
            for c in data["columns"]
        ]
        return {**data, "columns": columns, "count": sum(len(c["tasks"]) for c in columns)}
    if view == "runs":
        runs = [r for r in data["runs"] if r["id"] == run_id]
        return {**data, "runs": runs, "count": len(runs)}
    return data


async def _view_at(args: argparse.Namespace, db: Path | str) -> int:
    from rich.markup import escape

    from ._render import render_agents, render_board, render_fleet, render_runs

    out = console()
    view = args.view or "agents"
    async with _open(db, projections=True, readonly="if-needed") as (store, runner):
        run_id = await resolve_run(store, args.run)
        head = await store.head()
        if not 0 <= args.at <= head:
            return _error(f"position {args.at} is not in the log (0 to {head})")
        data = _of_run(view, await runner.view_at(view, args.at), run_id)
    if args.json:
        print_json(data)
        return 0
    whose = f"run {escape(run_id)}" if view in _SCOPED else f"the whole log; run {escape(run_id)}"
    out.rule(f"[bold]{view}[/] as of position {args.at} (head {head}; {whose})")
    if view == "agents":
        out.print(render_agents(data["agents"], title=None, width=out.width))
    elif view == "board":
        out.print(render_board(data))
    elif view == "runs":
        out.print(render_runs(data["runs"], width=out.width))
    elif view == "fleet":
        out.print(render_fleet({"fleet": data}))
    else:
        out.print_json(data=data)
    return 0


async def _rerun(args: argparse.Namespace, db: Path | str) -> int:
    from rich.markup import escape

    from hooks import load_settings
    from runtime import load_pattern
    from runtime.replay import RerunOptions, rerun

    options = RerunOptions(
        workspace=Path(args.workspace) if args.workspace else None,
        source=Path(args.source) if args.source else None,
        hooks=load_settings(args.hooks) if args.hooks else None,
        pattern=load_pattern(Path(args.pattern)) if args.pattern else None,
        exact=args.exact,
    )
    async with _open(db, projections=True) as (store, runner):
        run_id = await resolve_run(store, args.run)
        if not args.json:
            console().print(
                f"re-executing run [bold]{escape(run_id)}[/] on a fresh copy of its workspace. "
                "[yellow]"
                "Model answers are served from the log by fleet's replay model on loopback "
                "(nothing is sent to any API, no token is paid)[/]; tools and hooks run anew."
            )
        result = await rerun(store, runner, run_id, options)
    if args.json:
        print_json(result.to_json())
    else:
        _print_rerun(result, await _diffstat(result.workspace))
    return 0 if result.status == "completed" and not result.diverged else 1


async def _diffstat(workspace: Path) -> str:
    from runtime import git_root

    if await asyncio.to_thread(git_root, workspace) is None:
        return ""
    proc = await asyncio.create_subprocess_exec(
        "git", "diff", "--stat", "HEAD", "--", ".", cwd=workspace,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return out.decode(errors="replace").rstrip()


def _print_rerun(r: RerunResult, diffstat: str) -> None:
    from rich.markup import escape

    out = console()
    ok = r.status == "completed"
    recorded = (
        f" (the recording took {r.recorded_duration_ms / 1000:.2f} s)"
        if r.recorded_duration_ms is not None
        else ""
    )
    run_id = escape(r.run_id)
    out.rule(
        f"re-execution [bold]{run_id}[/] of {escape(r.replay_of)}: "
        + ("[green]completed[/]" if ok else "[red]failed[/]")
    )
    out.print(
        f"{r.responses_served} model answers served from the log in {r.duration_ms / 1000:.2f} s"
        f"{recorded}; workspace copy: {escape(str(r.workspace))}"
    )
    if r.git_head is None:
        out.print(
            f"[yellow]note:[/] {escape(str(r.source))} is not a git repository, so the copy is "
            "of the folder "
            "as it is now, not as it was when the run was recorded (give --source to choose)"
        )
    if r.error:
        out.print(f"[red]error:[/] {escape(r.error)}")
    if diffstat:
        out.print(f"[bold]what changed[/] in the copy:\n{escape(diffstat)}")
    if not r.divergences:
        out.print(
            "[green]no divergence[/]: every tool result and hook decision matches the recording"
        )
        return
    out.print(f"[bold red]{len(r.divergences)} divergence(s)[/] from the recording:")
    for d in r.divergences:
        _print_divergence(d)
    out.print(
        f"(recorded as ReplayDiverged events of run {run_id}: "
        f"[bold]fleet replay {run_id}[/] shows them in the timeline)"
    )


def _print_divergence(d: Divergence) -> None:
    from rich.markup import escape

    out = console()
    what = f" {d.tool}" if d.tool else ""
    out.print(
        f"- [bold]{escape(d.agent)}[/] step {d.step}: [red]{escape(d.kind)}[/]{escape(what)}"
        + (f" [dim]({escape(d.detail[:120])})[/]" if d.detail else "")
    )
    if d.kind == "tool_result" and ("\n" in d.expected or "\n" in d.actual):
        diff = list(
            difflib.unified_diff(
                d.expected.splitlines(), d.actual.splitlines(), "recorded", "now", lineterm="", n=1
            )
        )
        shown = diff[:16] + ([f"... ({len(diff) - 16} more lines)"] if len(diff) > 16 else [])
        for line in shown:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
            out.print(f"    [{style}]{escape(line)}[/]")
        return
    out.print(f"    recorded: {escape(_one_line(d.expected))}")
    out.print(f"    now:      {escape(_one_line(d.actual))}")


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- export and import --------------------------------------------------------------------


def _export_command(args: argparse.Namespace) -> int:
    db = _existing_db(args)
    if db is None:
        return _error(f"no log at {resolve_db(args.db)} (give it with --db or FLEET_DB)")
    try:
        key = export_key() if args.sign else None
    except KeyMissing as e:
        return _error(f"--sign: {e}")
    try:
        return asyncio.run(_export(args, db, key))
    except OSError as e:
        if isinstance(e, BrokenPipeError) and args.output == "-":
            raise  # stdout's reader went away (`| head`): `api.cli.main` ends quietly
        return _error(f"cannot write the export: {e}")


async def _export(args: argparse.Namespace, db: Path | str, key: bytes | None) -> int:
    from events import export_lines, export_run

    async with _open(db, projections=False, readonly=True) as (store, _):
        run_id = await resolve_run(store, args.run)
        if args.output == "-":
            lines = await export_lines(store, run_id, sign_key=key)
            out = sys.stdout.buffer
            async for line in lines:
                out.write(line)
            out.flush()
            return 0
        target = Path(args.output or f"{run_id}.jsonl")
        written = await export_run(store, run_id, target, sign_key=key)
    if args.json:
        print_json(
            {
                "run_id": written.run_id,
                "path": str(written.path),
                "events": written.events,
                "streams": written.streams,
                "sha256": written.sha256,
                "signed": written.signed,
                "bytes": written.bytes,
            }
        )
    else:
        from rich.markup import escape

        signed = ", signed" if written.signed else ""
        verify = " --verify" if written.signed else ""
        path = escape(str(written.path))
        console().print(
            f"exported run [bold]{escape(written.run_id)}[/]: {written.events} events of "
            f"{len(written.streams)} streams to {path} ({written.bytes} bytes, "
            f"sha256 {written.sha256[:16]}…{signed})"
        )
        console().print(
            f"load it elsewhere with [bold]fleet import {shell_word(str(written.path))}"
            f"{verify} --db OTHER.db[/]",
            soft_wrap=True,
        )
    return 0


_EXPORT_NOTICE = b"exported run "
"""How `fleet export`'s notice begins, which a user redirecting its output imports."""

_NOTICE_NOT_EXPORT = (
    "this is the notice `fleet export` prints, not an export (the run is in the file it "
    "names, RUN.jsonl by default; `fleet export RUN -o -` writes the run to stdout)"
)

WRITER_NOTICE_S = 1.0
"""How long `fleet import FIFO` waits for a writer before it says that it is waiting."""

_INTERRUPTED = {
    "reading": "nothing was imported",
    "writing": "the run was being written: it is in the log whole or not at all (see `fleet runs`)",
    "written": "the run was imported; its read models catch up at the next command",
}
"""What Ctrl-C left behind, by the phase `_import` was in (`_Phase`)."""


class _Phase:
    """Where `_import` is, for the line Ctrl-C prints: reading, writing, written."""

    now = "reading"


def _import_command(args: argparse.Namespace) -> int:
    import os
    import stat

    try:
        key = export_key() if args.verify else None
    except KeyMissing as e:
        return _error(f"--verify: {e}")
    fifo = False  # a pipe or a terminal: read through the event loop, not on a thread
    if args.file == "-":
        with contextlib.suppress(OSError, ValueError):  # no stdin: read as a file, says so
            mode = os.fstat(sys.stdin.fileno()).st_mode
            fifo = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(sys.stdin.fileno())
    else:
        given = Path(args.file)
        if given.is_dir():
            return _error(f"cannot read {args.file}: it is a folder (give the export's file)")
        if not given.exists():  # a pipe (`<(...)`) is read, as a file is
            return _error(f"cannot read {args.file}: no such file")
        with contextlib.suppress(OSError):  # the open says what is wrong
            fifo = stat.S_ISFIFO(given.stat().st_mode)
    phase = _Phase()
    try:
        return asyncio.run(_import(args, key, fifo, phase))
    except OSError as e:
        return _error(f"cannot read {args.file}: {e}")
    except KeyboardInterrupt:
        print(f"fleet: import interrupted; {_INTERRUPTED[phase.now]}", file=sys.stderr)
        return 130


async def _chunks(file: str, fifo: bool) -> AsyncIterator[bytes]:
    """The file's bytes (stdin for '-') in blocks: a file read on a worker thread, a FIFO
    (a named pipe, `<(...)`, stdin from a pipe) through the event loop (`_pipe_chunks`)."""
    if fifo:
        async for block in _stdin_pipe_chunks() if file == "-" else _fifo_chunks(file):
            yield block
        return
    handle = sys.stdin.buffer if file == "-" else await asyncio.to_thread(open, file, "rb")
    try:
        while block := await asyncio.to_thread(handle.read, 1 << 20):
            yield block
    finally:
        if file != "-":
            handle.close()


async def _fifo_chunks(path: str) -> AsyncIterator[bytes]:
    """The bytes a writer sends through the FIFO at `path`, cancellable at every wait.

    Opening a FIFO to read blocks until a writer opens it, and the blocked call
    cannot be interrupted: a worker thread opens it (`_open_fifo`). It is then
    read through the event loop (non-blocking), not on a thread: Ctrl-C while
    the writer is silent ends the command at once, where a blocked read held
    `asyncio.run` until the writer wrote or went away.
    """
    async for block in _pipe_chunks(await _open_fifo(path)):
        yield block


async def _stdin_pipe_chunks() -> AsyncIterator[bytes]:
    """Stdin, a pipe (`producer | fleet import -`) or a terminal, read through the event loop
    as a FIFO is: Ctrl-C while the producer (or the person) is silent ends the command (a
    read on a worker thread held `asyncio.run` until the producer wrote or went away). A copy
    of the descriptor is read, and stdin left blocking again, as whoever shares it (the
    shell) expects."""
    import os

    if os.isatty(sys.stdin.fileno()):  # else it looks hung
        print(
            "fleet: reading the export from the terminal (paste it, then Ctrl-D; "
            "Ctrl-C to give up)",
            file=sys.stderr,
            flush=True,
        )
    try:
        async for block in _pipe_chunks(os.dup(sys.stdin.fileno())):
            yield block
    finally:
        with contextlib.suppress(OSError):
            os.set_blocking(sys.stdin.fileno(), True)


async def _pipe_chunks(fd: int) -> AsyncIterator[bytes]:
    """The bytes of the pipe `fd` (closed at the end), read without a thread."""
    import os

    pipe = os.fdopen(fd, "rb", buffering=0)  # the transport closes it
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), pipe
    )
    try:
        while block := await reader.read(1 << 20):
            yield block
    finally:
        transport.close()


async def _open_fifo(path: str) -> int:
    """A descriptor reading the FIFO at `path`, once a writer has opened it.

    The open waits on a worker thread; after `WRITER_NOTICE_S` without a
    writer, a line on stderr says what the command waits for (it looked hung).
    Cancelled (Ctrl-C), it opens the FIFO to write and closes it at once, so
    that the thread's open returns and `asyncio.run` can end (it waits for its
    threads).
    """
    import os

    opening = asyncio.ensure_future(asyncio.to_thread(os.open, path, os.O_RDONLY))
    try:
        done, _ = await asyncio.wait({opening}, timeout=WRITER_NOTICE_S)
        if not done:
            print(
                f"fleet: waiting for a writer on {path} (a FIFO; Ctrl-C to give up)",
                file=sys.stderr,
                flush=True,
            )
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        if not opening.done():
            with contextlib.suppress(OSError):  # ENXIO: the thread's open has returned
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        with contextlib.suppress(Exception):
            os.close(await opening)
        raise


async def _import(args: argparse.Namespace, key: bytes | None, fifo: bool, phase: _Phase) -> int:
    from events import spool_export
    from events.errors import ExportInvalid

    db = resolve_db(args.db)
    source = "<stdin>" if args.file == "-" else args.file
    first = bytearray()

    async def chunks() -> AsyncIterator[bytes]:
        async for block in _chunks(args.file, fifo):
            if len(first) < len(_EXPORT_NOTICE):
                first.extend(block[: len(_EXPORT_NOTICE)])
            yield block

    try:
        # Checked whole before the log is opened: a refused file creates no log.
        export = await spool_export(chunks(), source=source, verify_key=key)
    except ExportInvalid as e:
        if e.line == 1 and first.startswith(_EXPORT_NOTICE):
            # `fleet export RUN > run.jsonl` (or `| fleet import -`): the notice, not the run.
            raise ExportInvalid(source, _NOTICE_NOT_EXPORT, line=1) from None
        raise
    async with export, _open(db, projections=True) as (store, runner):
        phase.now = "writing"
        result = await export.import_into(store)
        phase.now = "written"
        await runner.wait_for(result.last_position, timeout=60.0)
        run = next((r for r in runner.view("runs")["runs"] if r["id"] == result.run_id), None)
    if args.json:
        print_json(
            {
                "run_id": result.run_id,
                "events": result.events,
                "streams": list(result.streams),
                "first_position": result.first_position,
                "last_position": result.last_position,
                "db": str(db),
                "run": run,
            }
        )
    else:
        from rich.markup import escape

        status = f", {run['status']}, {run['agent_count']} agents" if run else ""
        run_id, where = escape(result.run_id), escape(str(db))
        console().print(
            f"imported run [bold]{run_id}[/]{escape(status)}: {result.events} events of "
            f"{len(result.streams)} streams at positions {result.first_position}.."
            f"{result.last_position} of {where}; projections are up to date."
        )
        console().print(
            f"see it with [bold]fleet replay {run_id} --db {shell_word(str(db))}[/]",
            soft_wrap=True,
        )
    return 0
