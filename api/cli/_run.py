"""`fleet run`, `fleet demo`, `fleet resume` and `fleet abandon`: runs, live, and after a crash.

Standard library only at import (`api/cli/__init__.py`, note 1): each command
imports the runtime and rich when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import (
    DEFAULT_DB,
    add_common,
    console,
    not_negative,
    percent,
    positive,
    print_json,
    require_log,
    resolve_db,
    resolve_run,
    shell_word,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from events import EventStore
    from runtime import RunResult, Runtime, RuntimeOptions

__all__ = ["BUILTIN_PATTERN_NAMES", "configure"]

DEMO_TASK = "rename `count_words` to `word_count` everywhere"
SIMULATOR_NOTICE = (
    "[yellow]offline simulator[/] (no ANTHROPIC_API_KEY): model responses are scripted by "
    "fleet's Messages-API simulator on loopback, not written by Claude"
)
BUILTIN_PATTERN_NAMES = ("plan-build-review-ship", "scout-builder", "scout-plan-build")
"""`runtime.BUILTIN_PATTERNS` by name, for `--help` without importing the runtime (a test
keeps the two equal)."""


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `run`, `demo` or `resume`."""
    if command == "run":
        parser.add_argument("task", help='what to do, e.g. "rename `old` to `new`"')
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--pattern",
            default="scout-plan-build",
            help=f"a built-in pattern ({', '.join(BUILTIN_PATTERN_NAMES)}) or a TOML file",
        )
        mode.add_argument(
            "--orchestrator", action="store_true", help="let the orchestrator agent decide"
        )
        parser.add_argument(
            "--workspace",
            metavar="DIR",
            help="the folder whose files the agents change (default: the current folder, "
            "only if it is a git repository with a clean tree)",
        )
        _add_run_options(parser)
        parser.set_defaults(func=_run_command)
    elif command == "demo":
        parser.add_argument(
            "--workspace", metavar="DIR", help="where to copy the sample repository"
        )
        parser.add_argument("--task", default=DEMO_TASK, help=f"the task (default: {DEMO_TASK})")
        parser.add_argument("--pattern", default="scout-plan-build")
        _add_run_options(parser, latency=0.05)
        parser.set_defaults(func=_demo_command)
    elif command == "resume":
        parser.add_argument(
            "run",
            nargs="?",
            help="the run to resume, a run- prefix or not (default: every interrupted run)",
        )
        _add_run_options(parser)
        parser.set_defaults(func=_resume_command)
    else:
        parser.add_argument("run", help="the interrupted run to give up on (a run- prefix or not)")
        add_common(parser)
        parser.set_defaults(func=_abandon_command)


def _add_run_options(parser: argparse.ArgumentParser, *, latency: float = 0.0) -> None:
    add_common(parser)
    parser.add_argument("--model", help="default model for agents (haiku, sonnet, opus, ...)")
    parser.add_argument(
        "--hooks", metavar="PATH", help="hooks settings.json (default: the project's)"
    )
    parser.add_argument(
        "--budget-usd",
        type=positive(float),
        help="stop the run past this cost (this run's agents together; other runs in the "
        "log do not count)",
    )
    parser.add_argument(
        "--budget-tokens",
        type=positive(int),
        help="stop the run past this many tokens (this run's agents together)",
    )
    parser.add_argument(
        "--agent-budget-usd", type=positive(float), help="stop any agent past this cost"
    )
    parser.add_argument(
        "--agent-budget-tokens", type=positive(int), help="stop any agent past this many tokens"
    )
    parser.add_argument(
        "--agent-context-percent",
        type=percent,
        help="stop any agent past this share of its context",
    )
    parser.add_argument("--max-agents", type=positive(int), default=64, help="live agents at most")
    parser.add_argument(
        "--engine",
        choices=["fleet", "claude-code"],
        default="fleet",
        help="what runs the agents a step does not assign: fleet's loop or Claude Code",
    )
    parser.add_argument(
        "--latency", type=not_negative, default=latency, help="simulator pause per answer, seconds"
    )
    parser.add_argument("--quiet", action="store_true", help="no live view")


def _options(args: argparse.Namespace, workspace: Path) -> RuntimeOptions:
    from runtime import Budgets, RuntimeOptions

    return RuntimeOptions(
        db=resolve_db(args.db),
        workspace=workspace,
        hooks=Path(args.hooks) if args.hooks else None,
        default_model=args.model or "haiku",
        budgets=Budgets(
            agent_usd=args.agent_budget_usd,
            agent_tokens=args.agent_budget_tokens,
            agent_context_percent=args.agent_context_percent,
            run_usd=args.budget_usd,
            run_tokens=args.budget_tokens,
        ),
        max_live_agents=args.max_agents,
        simulator_latency_s=args.latency,
        engine=args.engine,
    )


def _run_command(args: argparse.Namespace) -> int:
    from ..errors import ApiError

    if not args.task.strip():
        raise ApiError("the task is blank: say what the agents should do; nothing was written")
    workspace = _workspace(args.workspace)
    pattern = None if args.orchestrator else args.pattern
    return _stoppable(args, lambda runs: _run(args, workspace, args.task, pattern, runs))


def _stoppable(
    args: argparse.Namespace, main: Callable[[list[str]], Coroutine[Any, Any, int]]
) -> int:
    """`asyncio.run(main(runs))`, which Ctrl-C stops with a line on how to go on, and no
    traceback. `runs`: the run `main` is conducting now, if any (it adds the run's id
    as the run starts or is taken up, and takes it out when the run has ended).

    A stopped run is interrupted, not ended (its agents are left as they were,
    runtime/_patterns.py note 4): `fleet resume` carries it on. The first Ctrl-C
    stops `main`, which closes the log; a second one while it closes says so
    and lets it close (asyncio's own handler raised KeyboardInterrupt wherever
    the closing was, with a traceback); a third quits at once (`_Presses`).
    """
    runs: list[str] = []
    try:
        return asyncio.run(_Presses(args).guard(main(runs)))
    except KeyboardInterrupt:
        resume = _resume_line(args)
        if runs:
            said = f"; run {runs[-1]} is interrupted, not ended: `{resume}` carries it on"
        elif args.command == "resume":  # stopped among the lone agents it resumes
            said = f"; `{resume}` carries on"
        else:  # before its run started, or after it ended
            said = ""
        print(f"fleet: stopped{said}", file=sys.stderr)
        return 130


class _Presses:
    """Ctrl-C during `guard(coro)`: the first cancels it, as `asyncio.run` does (a
    KeyboardInterrupt once it ends); the second, while it closes, says so; the third
    quits at once. What was appended stays (each append is committed when it returns);
    the projections' last checkpoints are left to the next start to make again."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self.count = 0

    async def guard(self, coro: Coroutine[Any, Any, int]) -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        try:
            loop.add_signal_handler(signal.SIGINT, self._pressed, task)
        except (NotImplementedError, RuntimeError, ValueError):  # a thread: asyncio.run's way
            return await coro
        try:
            return await coro
        except asyncio.CancelledError:
            if self.count and task.uncancel() == 0:
                raise KeyboardInterrupt from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def _pressed(self, task: asyncio.Task[int]) -> None:
        self.count += 1
        if self.count == 1:
            task.cancel()
        elif self.count == 2:
            print("fleet: stopping: closing the log; Ctrl-C again quits at once", file=sys.stderr)
        else:
            print(
                "fleet: quit at once: what was written stays; "
                f"`{_resume_line(self._args)}` carries on",
                file=sys.stderr,
                flush=True,
            )
            os._exit(130)


def _resume_line(args: argparse.Namespace) -> str:
    """The `fleet resume` that finds this command's log (a URL is not shown: it may hold a
    password)."""
    if args.db is None:  # $FLEET_DB, else .fleet/fleet.db here: the same for the next command
        return "fleet resume"
    db = resolve_db(args.db)
    if isinstance(db, Path):
        return f"fleet resume --db {shlex.quote(str(db))}"
    return "fleet resume --db URL"


def _workspace(given: str | None) -> Path:
    """The folder a run will change: `--workspace`, or the current folder if it is a git
    repository with a clean tree (so what the agents change can be seen and undone).

    Raises `ApiError` before anything is written (no log is created).
    """
    from ..errors import ApiError

    if given is not None:
        workspace = Path(given).resolve()
        if not workspace.is_dir():
            raise ApiError(f"no such folder: {workspace} (--workspace); nothing was written")
        return workspace
    here = Path.cwd()
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True
    )
    if status.returncode != 0:
        why = "it is not a git repository"
    elif status.stdout.strip():
        why = "its git tree has uncommitted changes"
    else:
        return here.resolve()
    raise ApiError(
        f"fleet run changes the files of the folder it works in; {here} was not chosen "
        f"({why}): give --workspace DIR, or run it in a git repository with a clean tree"
    )


def _demo_command(args: argparse.Namespace) -> int:
    from runtime import prepare_workspace

    if args.workspace:
        workspace = Path(args.workspace)
    else:
        db = resolve_db(args.db)
        folder = db.parent if isinstance(db, Path) else DEFAULT_DB.parent
        workspace = folder / "workspaces" / time.strftime("demo-%Y%m%d-%H%M%S")
    try:
        workspace = asyncio.run(prepare_workspace(workspace))
    except (OSError, RuntimeError) as e:  # a file, a folder not empty, git failing
        from ..errors import ApiError

        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ApiError(
            f"cannot copy the sample repository to {workspace} (--workspace): {why}; "
            "give a folder that does not exist yet, or an empty one"
        ) from None
    if not args.json:
        from rich.markup import escape

        console().print(
            f"[bold]fleet demo[/]: sample repository copied to {escape(str(workspace))}"
        )
    workspace = workspace.resolve()
    return _stoppable(args, lambda runs: _run(args, workspace, args.task, args.pattern, runs))


async def _run(
    args: argparse.Namespace, workspace: Path, task: str, pattern: str | None, runs: list[str]
) -> int:
    """Run `task`; the run's id is in `runs` from its start to its end (`_stoppable`)."""
    from rich.markup import escape

    from runtime import (
        check_runnable,
        load_pattern,
        new_run_id,
        open_runtime,
        run_orchestrator,
        run_pattern,
    )

    spec = load_pattern(pattern) if pattern else None
    run_id = new_run_id()
    async with open_runtime(_options(args, workspace)) as rt:
        # An unknown model or a step that needs git: said alone, before the run is shown.
        await check_runnable(rt.fleet, spec, args.model)
        if not args.json:
            if rt.simulated:
                console().print(SIMULATOR_NOTICE)
            how = (
                f"pattern [bold]{escape(spec.name)}[/]"
                if spec
                else "the [bold]orchestrator[/] agent"
            )
            console().print(
                f"running {how} on: {escape(task)}\n"
                f"[bold]changing files in {escape(str(workspace))}[/]\n"
                f"log: {escape(str(rt.store.location))}"
            )
        runs.append(run_id)
        job = (
            run_pattern(rt.fleet, spec, task, model=args.model, run_id=run_id, checked=True)
            if spec
            else run_orchestrator(rt.fleet, task, model=args.model, run_id=run_id)
        )
        if args.json or args.quiet:
            result = await job
        else:
            result = await _with_live_view(rt, job, run_id)
        runs.remove(run_id)
        await rt.runner.wait_for(await rt.store.head())
        report = await _report(rt, result, workspace)
        cards = [a for a in rt.runner.view("agents")["agents"] if a["run_id"] == run_id]
    if args.json:
        print_json(report)
    else:
        _print_report(report, cards)
    return 0 if result.status == "completed" else 1


def _resume_command(args: argparse.Namespace) -> int:
    return _stoppable(args, lambda runs: _resume(args, runs))


async def _interrupted(db: Path | str, only: str | None) -> list[tuple[str, Path]]:
    """The interrupted runs (or `only`), each with its workspace."""
    from events import open_store
    from projections import ProjectionRunner
    from runtime import check_resumable, interrupted_runs

    await require_log(db)  # a mistyped --db is not a new, empty log with nothing to resume
    async with open_store(db) as store, ProjectionRunner(store) as runner:
        if only is None:
            ids = await interrupted_runs(store, runner)
        else:  # refused here, before the run's header is printed
            ids = [await _named(store, only)]
            await check_resumable(store, ids[0])
        runs = {r["id"]: r for r in runner.view("runs")["runs"]}
    return [(i, Path(runs[i]["workspace"] or ".") if i in runs else Path.cwd()) for i in ids]


async def _resume(args: argparse.Namespace, runs: list[str]) -> int:
    """Resume interrupted runs, then lone working agents, from the log; 0 when all completed.

    Each run's id is in `runs` from when it is taken up to its end (`_stoppable`).
    """
    from rich.markup import escape

    from runtime import open_runtime, resume_run

    reports = []
    for run_id, workspace in await _interrupted(resolve_db(args.db), args.run):
        async with open_runtime(_options(args, workspace)) as rt:
            if not args.json:
                if rt.simulated:
                    console().print(SIMULATOR_NOTICE)
                console().print(
                    f"resuming run [bold]{escape(run_id)}[/] from the log; it changes files in "
                    f"{escape(str(workspace))}"
                )
            runs.append(run_id)
            job = resume_run(rt.fleet, run_id)
            result = await (job if args.json or args.quiet else _with_live_view(rt, job, run_id))
            runs.remove(run_id)
            await rt.runner.wait_for(await rt.store.head())
            reports.append(await _report(rt, result, workspace))
            cards = [a for a in rt.runner.view("agents")["agents"] if a["run_id"] == run_id]
        if not args.json:
            _print_report(reports[-1], cards)
    resumed: list[str] = []
    statuses: dict[str, str] = {}
    if args.run is None:
        async with open_runtime(_options(args, Path.cwd())) as rt:
            resumed = await rt.fleet.resume_unfinished()
            if resumed and not args.json:
                console().print(
                    f"resuming {len(resumed)} agents from the log: {escape(', '.join(resumed))}"
                )
            statuses = await rt.fleet.wait_all(resumed) if resumed else {}
    if args.json:
        print_json({"runs": reports, "resumed": resumed, "statuses": statuses})
    elif not reports and not resumed:
        console().print("nothing to resume: no run is interrupted and no agent is working")
    else:
        for agent_id, status in statuses.items():
            console().print(f"  {escape(agent_id)}: {_status_style(status)}")
    ok = all(r["status"] == "completed" for r in reports)
    return 0 if ok and all(s == "completed" for s in statuses.values()) else 1


def _abandon_command(args: argparse.Namespace) -> int:
    return asyncio.run(_abandon(args))


async def _abandon(args: argparse.Namespace) -> int:
    from runtime import RuntimeOptions, abandon_run, open_runtime

    options = RuntimeOptions(db=resolve_db(args.db), workspace=Path.cwd())
    await require_log(options.db)
    async with open_runtime(options) as rt:
        run_id = await _named(rt.store, args.run)
        await abandon_run(rt.fleet, run_id)
    if args.json:
        print_json({"abandoned": run_id})
    else:
        from rich.markup import escape

        console().print(f"run {escape(run_id)} abandoned: its agents are deleted and it has failed")
    return 0


async def _named(store: EventStore, run: str) -> str:
    """The run id `run` names, with or without a `run-` prefix (`resolve_run`), else `run`
    as given: the runtime then says why it cannot be resumed or abandoned."""
    from events import RunNotFound

    try:
        return await resolve_run(store, run)
    except RunNotFound:
        return run


async def _with_live_view(
    rt: Runtime, job: Coroutine[Any, Any, RunResult], run_id: str
) -> RunResult:
    from rich.live import Live

    task = asyncio.ensure_future(job)
    started = time.monotonic()

    def view() -> RenderableType:
        return _live_view(rt, run_id, time.monotonic() - started)

    try:
        with Live(view(), console=console(), refresh_per_second=8, transient=False) as live:
            while not task.done():
                await asyncio.wait({task}, timeout=0.15)  # a timeout never cancels the run
                live.update(view())
    finally:
        # Stopped (Ctrl-C): the run stops with the view, while its fleet is still open,
        # instead of going on as the runtime closes under it (it is resumed later).
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return task.result()


def _live_view(rt: Runtime, run_id: str, elapsed_s: float) -> RenderableType:
    """This run's agents only, fitted to the terminal (columns dropped, never cut), the clock."""
    from rich.console import Group
    from rich.text import Text

    from ._render import render_agents

    agents = [a for a in rt.runner.view("agents")["agents"] if a["run_id"] == run_id]
    live = sum(1 for a in agents if a["status"] in ("working", "waiting"))
    header = Text.assemble(
        ("run ", "bold"), (run_id, "bold"), f" · {elapsed_s:.1f} s elapsed · ",
        f"{len(agents)} agents, {live} at work",
    )  # fmt: skip
    return Group(header, render_agents(agents, title=None, width=console().width))


_STATUS_COLOURS = {
    "working": "cyan",
    "waiting": "magenta",
    "completed": "green",
    "failed": "red",
    "deleted": "dim",
}


def _status_style(status: str) -> str:
    from rich.markup import escape

    colour = _STATUS_COLOURS.get(status)
    return f"[{colour}]{status}[/]" if colour else escape(status)


async def _git(workspace: Path, *args: str) -> str:
    from runtime import git_root

    if await asyncio.to_thread(git_root, workspace) is None:
        return ""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=workspace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return out.decode(errors="replace").rstrip()  # a diffstat's lines start with a space


async def _tests(rt: Runtime, run_id: str) -> dict[str, Any]:
    """The last test command this run's agents ran, and what it said
    (`runtime/_run_damage.py`, note 3): fleet does not run a project's tests itself."""
    from runtime import run_damage

    last = (await run_damage(rt.store, run_id=run_id)).last_tests
    if last is None:
        return {"ran": False}
    return {
        "ran": True,
        "passed": last.passed,
        "none_ran": last.none_ran,
        "command": last.command,
        "agent_id": last.agent_id,
        "summary": last.said,
        "edits_after": last.edits_after,
    }


async def _report(rt: Runtime, result: RunResult, workspace: Path) -> dict[str, Any]:
    # What changed since the commit the run started at (RunStarted recorded it).
    started = await rt.store.read_stream(f"run-{result.run_id}")
    config = getattr(started[0].data, "config", {}) if started else {}
    config = config if isinstance(config, dict) else {}
    # From the tree the run started on: its uncommitted changes then are not this run's.
    start = config.get("git_tree") or config.get("git_head")
    # `-- .`: a workspace may be a subfolder of its repository; only its changes are the run's.
    diffstat = await _git(workspace, "diff", "--stat", str(start), "--", ".") if start else None
    agents = [a for a in rt.runner.view("agents")["agents"] if a["run_id"] == result.run_id]
    fleet = rt.runner.view("fleet")
    return {
        "run_id": result.run_id,
        "status": result.status,
        "error": result.error,
        "summary": result.summary,
        "duration_s": round(result.duration_ms / 1000, 3),
        "simulated": rt.simulated,
        "workspace": str(workspace),
        "diffstat": diffstat,
        "tests": await _tests(rt, result.run_id),
        "agents": [
            {
                "id": a["id"],
                "name": a["name"],
                "role": a["role"],
                "model": a["model"],
                "engine": a["engine"],
                "status": a["status"],
                "tokens": a["tokens"]["total"],
                "cost_usd": a["cost_usd"],
                "tool_calls": a["tool_calls"]["count"],
                "files_consumed": a["files_consumed"],
                "files_produced": a["files_produced"],
            }
            for a in agents
        ],
        "fleet": {
            "agents_created": fleet["agents_created"],
            "agents_deleted": fleet["agents_deleted"],
            "tokens": fleet["tokens"]["total"],
            "cost_usd": fleet["cost_usd"],
            "events": await rt.store.head(),
        },
        "log": str(rt.store.location),
    }


def _print_report(report: dict[str, Any], cards: list[dict[str, Any]]) -> None:
    """The end of a run: every string of the run (task, paths, the model's words) is
    escaped, never read as rich markup (a `[/]` in a file name is text)."""
    from rich.markup import escape

    out = console()
    ok = report["status"] == "completed"
    out.rule("[green]run complete[/]" if ok else "[red]run failed[/]")
    if report["error"]:
        out.print(f"[red]error:[/] {escape(report['error'])}")
    if report["summary"]:
        out.print(escape(report["summary"]))
    out.print(f"\n[bold]what changed[/] in {escape(report['workspace'])}:")
    if report["diffstat"] is None:
        out.print("(not shown: no git commit to compare with; see what each agent wrote)")
    else:
        out.print(escape(report["diffstat"]) or "(no change)")
    tests = report["tests"]
    if tests["ran"]:
        if tests["none_ran"]:  # "Ran 0 tests ... OK" is not a pass: the runner found none
            verdict = "[yellow]none ran[/]"
        else:
            verdict = "[green]passed[/]" if tests["passed"] else "[red]failed[/]"
        out.print(
            f"\n[bold]tests[/]: {verdict}: {escape(tests['summary'])}\n"
            f"  (`{escape(tests['command'])}`, run by {escape(tests['agent_id'])})"
        )
        if after := tests["edits_after"]:
            out.print(f"  [yellow]{after} edit{'s' if after > 1 else ''} made after it[/]")
    else:
        out.print("\n[bold]tests[/]: none run by this run's agents")
    from ._render import render_agents

    out.print(render_agents(cards, title="agents of this run", width=out.width))
    for a in report["agents"]:
        if a["files_produced"]:
            wrote = ", ".join(a["files_produced"])
            out.print(f"  {escape(a['name'])} wrote: {escape(wrote)}")
    f = report["fleet"]
    out.print(
        f"[bold]fleet totals[/]: {f['agents_created']} agents created, "
        f"{f['agents_deleted']} deleted, "
        f"{f['tokens']} tokens, ${f['cost_usd']:.4f}, {f['events']} events in the log"
    )
    if report["simulated"]:
        out.print("(costs are what Claude would have charged for the simulator's token counts)")
    log, run_id = escape(report["log"]), escape(report["run_id"])
    db = shell_word(report["log"])
    out.print(f"[bold]log[/]: {log}  (run {run_id}, {report['duration_s']} s)")
    # Commands to copy: the log quoted for the shell, the line left whole (a wrap inside
    # the command broke it when pasted).
    out.print(
        f"next: [bold]fleet replay {run_id} --db {db}[/] or "
        f"[bold]fleet serve --db {db}[/] and open http://127.0.0.1:8000/",
        soft_wrap=True,
    )
