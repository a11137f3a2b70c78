"""`fleet agents`, `fleet board`, `fleet runs` and `fleet events`: the log in the terminal.

These read the SQLite log directly (no server needed): the views come from a
`ProjectionRunner` on the log (`--at POSITION` folds up to a past position),
and `events --follow` follows `store.subscribe`, one readable line per event,
until Ctrl-C (or until the log file is deleted or replaced: `_while_there`).
`--json` prints the same JSON as the HTTP API (`events` prints JSON Lines, one
event per line, each the shape of an event of `GET /v1/events`).
The tables and lines are drawn by `api/cli/_render.py`. Standard library
only at import (`api/cli/__init__.py`, note 1): each command imports the
log, the projections and rich when it runs.

Notes (do not fix without reading this):
1. A read command never creates a log: a missing `--db` file is an error
   (opening a store for writing on a missing path would create an empty one).
   `fleet events` opens the log read-only; the views' projection runner does
   write its checkpoints into the log, as the server does: the next command
   starts from them instead of position 0. A log that cannot be written (a
   read-only file, folder or disk) is read all the same (`open_to_read`).
2. Into a terminal, tables fit its width (the least needed columns are left
   out); into a pipe or a file they are printed at their natural width, so
   `grep` and scripts see whole rows.
3. `--run RUN` takes a run id with or without its stream's `run-` prefix, as
   `fleet replay` and `export` do (`resolve_run`, shared); a run the log does
   not hold is an error, not an empty table or a silent follow.
4. `fleet agents` now (no `--at`) answers an external session whose process
   is gone "interrupted", and one working with no hook for long "stale", as
   the API does (`projections/_liveness.py`); with `--at`, the log's status.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ._common import (
    add_common,
    console,
    existing_log,
    log_missing,
    log_position,
    make_console,
    no_log,
    print_json,
    printable,
    resolve_run,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from events import EventFilter, EventStore, RecordedEvent

__all__ = ["Views", "configure", "read_views"]

_BATCH = 500  # events printed per write when printing the log

# -- reading the log ------------------------------------------------------------


class Views(NamedTuple):
    """What `read_views` read: the views by name, the position they are at, the run asked for."""

    views: dict[str, dict[str, Any]]
    position: int
    run_id: str | None
    # The runs a live process conducts now (`projections.conducted_runs`), when asked.
    conducted: frozenset[str] | None = None


async def read_views(
    db: Path | str,
    names: Sequence[str],
    *,
    at: int | None = None,
    run: str | None = None,
    conducted: bool = False,
) -> Views:
    """The views `names` of the log at `db` now (or as of position `at`), and that position;
    with `run`, the id of the run it names (`resolve_run`: a `run-` prefix or not); with
    `conducted` (now only), the runs a live process conducts.

    Raises `ApiError` when there is no log at `db` (nothing is created),
    `projections.InvalidPosition` when `at` is negative or past the head,
    `RunNotFound` when `run` names no run of the log.
    """
    from projections import ProjectionRunner, conducted_runs

    from ._common import open_to_read

    if await asyncio.to_thread(log_missing, db):
        raise no_log(db)
    async with open_to_read(db) as store:
        run_id = None if run is None else await resolve_run(store, run)
        async with ProjectionRunner(store) as runner:
            if at is None:
                live = await conducted_runs(store) if conducted else None
                views = {name: runner.view(name) for name in names}
                return Views(views, runner.position, run_id, live)
            return Views({name: await runner.view_at(name, at) for name in names}, at, run_id)


# -- commands -------------------------------------------------------------------------


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `agents`, `board`, `runs` or `events`."""
    add_common(parser)
    if command == "agents":
        from projections import JUDGED_STATUSES, STATUSES

        parser.add_argument(
            "--run", metavar="RUN", help="only this run's agents (its id, a run- prefix or not)"
        )
        parser.add_argument("--status", action="append", choices=STATUSES + JUDGED_STATUSES,
                            help="only agents in this status (repeatable)")  # fmt: skip
        parser.add_argument(
            "--active", action="store_true", help="only created, working or waiting agents"
        )
        _add_at(parser)
        parser.set_defaults(func=_agents_command)
    elif command == "board":
        parser.add_argument(
            "--run", metavar="RUN", help="only this run's tasks (its id, a run- prefix or not)"
        )
        _add_at(parser)
        parser.set_defaults(func=_board_command)
    elif command == "runs":
        from projections import RUN_STATUSES

        parser.add_argument("--status", action="append", choices=RUN_STATUSES,
                            help="only runs in this status (repeatable; interrupted: "
                                 "the ones `fleet resume` takes up)")  # fmt: skip
        _add_at(parser)
        parser.set_defaults(func=_runs_command)
    else:
        _add_events_arguments(parser)
        parser.set_defaults(func=_events_command)


def _add_events_arguments(parser: argparse.ArgumentParser) -> None:
    from events import EVENT_TYPES

    parser.add_argument(
        "-f", "--follow", action="store_true",
        help="keep printing new events until Ctrl-C (starts with the last 10)",
    )  # fmt: skip
    parser.add_argument(
        "--run", metavar="RUN", help="only this run's events (its id, a run- prefix or not)"
    )
    parser.add_argument("--agent", metavar="NAME|ID",
                        help="only this agent's events (a name: its newest agent)")  # fmt: skip
    parser.add_argument("--type", action="append", choices=sorted(EVENT_TYPES), metavar="TYPE",
                        help="only events of this type (repeatable)")  # fmt: skip
    parser.add_argument("--after", type=log_position, metavar="POSITION",
                        help="only events after this position")  # fmt: skip
    parser.add_argument("--tail", type=_count, metavar="N", help="start with the last N events")
    parser.add_argument("--limit", type=_count, metavar="N", help="stop after N events")


def _count(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _add_at(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", type=log_position, metavar="POSITION",
                        help="as of this past position in the log (time travel)")  # fmt: skip


def _caption(position: int, at: int | None) -> str:
    return f"as of position {position}" if at is not None else f"at position {position} (head)"


def _counted(count: int, noun: str) -> str:
    """`1 run`, `2 runs`: a table's caption counts what it shows."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _agents_command(args: argparse.Namespace) -> int:
    now = args.at is None  # the runs and their leases judge the agents now (note 4)
    views, position, run_id, conducted = asyncio.run(
        read_views(existing_log(args.db), ["agents", "runs"] if now else ["agents"],
                   at=args.at, run=args.run, conducted=now)
    )  # fmt: skip
    wanted = set(args.status or ())
    if args.active:
        wanted |= {"created", "working", "waiting"}
    cards = views["agents"]["agents"]
    if conducted is not None:  # now: a session whose process is gone, or silent for long,
        # an agent of a run no live process conducts (note 4)
        from projections import cut_short

        cards = _judged(cards, cut_short(views["runs"]["runs"], conducted))
    agents = [
        a
        for a in cards
        if (run_id is None or a["run_id"] == run_id) and (not wanted or a["status"] in wanted)
    ]
    if args.json:
        print_json({"count": len(agents), "agents": agents})
        return 0
    if not agents:
        console().print(f"no agents ({_caption(position, args.at)})")
        return 0
    from ._render import render_agents

    table = render_agents(agents, width=_width())
    table.caption = f"{_counted(len(agents), 'agent')}, {_caption(position, args.at)}"
    _print(table)
    return 0


def _judged(cards: list[dict[str, Any]], cut: frozenset[str]) -> list[dict[str, Any]]:
    """`cards` with each external session's status as judged now (`projections/_liveness.py`),
    and those of `cut` (their run was cut short) in an active status "interrupted", as
    `GET /v1/agents` answers them; `FLEET_STALE_AFTER` (seconds) as `fleet serve` reads it."""
    import time

    from projections import DEFAULT_STALE_AFTER_S, judge_liveness, judged_card, this_host

    try:
        stale_after = float(os.environ.get("FLEET_STALE_AFTER") or DEFAULT_STALE_AFTER_S)
    except ValueError:
        stale_after = DEFAULT_STALE_AFTER_S
    if not stale_after > 0:
        stale_after = DEFAULT_STALE_AFTER_S
    now, host = time.time(), this_host()
    out = []
    for card in cards:
        status = judge_liveness(card, now=now, stale_after=stale_after, host=host, cut=cut)
        out.append(judged_card(card, status))
    return out


def _board_command(args: argparse.Namespace) -> int:
    views, position, run_id, _ = asyncio.run(
        read_views(existing_log(args.db), ["board"], at=args.at, run=args.run)
    )
    board = views["board"]
    if run_id is not None:
        columns = [
            {**c, "tasks": [t for t in c["tasks"] if t["run_id"] == run_id]}
            for c in board["columns"]
        ]
        board = {**board, "columns": columns, "count": sum(len(c["tasks"]) for c in columns)}
    if args.json:
        print_json(board)
        return 0
    from ._render import render_board

    table = render_board(board)
    table.caption = f"{_counted(board['count'], 'task')}, {_caption(position, args.at)}"
    _print(table)
    return 0


def _runs_command(args: argparse.Namespace) -> int:
    db = existing_log(args.db)
    if args.at is None:
        runs, position = asyncio.run(_runs_now(db))
    else:
        views, position, _, _ = asyncio.run(read_views(db, ["runs"], at=args.at))
        runs = views["runs"]
    if args.status:
        kept = [r for r in runs["runs"] if r["status"] in args.status]
        runs = {**runs, "count": len(kept), "runs": kept}
    if args.json:
        print_json(runs)
        return 0
    if not runs["runs"]:
        console().print(f"no runs ({_caption(position, args.at)})")
        return 0
    from ._render import render_runs

    table = render_runs(runs["runs"], width=_width())
    table.caption = f"{_counted(runs['count'], 'run')}, {_caption(position, args.at)}"
    _print(table)
    return 0


async def _runs_now(db: Path | str) -> tuple[dict[str, Any], int]:
    """The runs view now, a running run that no live process conducts as "interrupted"."""
    from projections import ProjectionRunner, mark_interrupted

    from ._common import open_to_read

    async with open_to_read(db) as store, ProjectionRunner(store) as runner:
        runs = runner.view("runs")
        marked = await mark_interrupted(store, runs["runs"])
        return {**runs, "runs": marked}, runner.position


def _events_command(args: argparse.Namespace) -> int:
    db = existing_log(args.db)
    try:
        if not asyncio.run(_print_events(db, args)):
            return 1
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --follow ends
    # A broken pipe (`fleet events --json | head`) ends it quietly in `api.cli.main`.
    return 0


async def _print_events(db: Path | str, args: argparse.Namespace) -> bool:
    """Print the events `args` asks for; False (after saying why) when `--agent` names none."""
    from events import EventFilter, open_store

    tail = (
        args.tail if args.tail is not None else (10 if args.follow and args.after is None else None)
    )
    limit = args.limit
    printed = 0
    async with open_store(db, readonly=True) as store:
        opened = await asyncio.to_thread(_identity, db)
        run_id = None if args.run is None else await resolve_run(store, args.run)
        agent_id = args.agent
        if agent_id is not None:
            agent_id = await _agent_named(store, agent_id, run_id)
            if agent_id is None:
                return False
        where = None
        if run_id or agent_id or args.type:
            where = EventFilter.of(run_id=run_id, agent_id=agent_id, types=args.type)
        head = await store.head()
        batch: list[RecordedEvent] = []
        async for event in _backlog(store, args.after or 0, head, where, tail):
            batch.append(event)
            if len(batch) == _BATCH or (limit is not None and printed + len(batch) >= limit):
                printed += _emit(batch, args.json)
                batch = []
                if limit is not None and printed >= limit:
                    return True
        printed += _emit(batch, args.json)
        if not args.follow:
            return True

        async def follow() -> None:
            count = printed
            async for event in store.subscribe(after=max(head, args.after or 0), where=where):
                count += _emit([event], args.json)
                if limit is not None and count >= limit:
                    return

        await _while_there(follow(), db, opened)
    return True


FOLLOW_CHECK_S = 1.0
"""How often `events --follow` checks that the log it follows is still the file at `--db`."""


def _identity(db: Path | str) -> tuple[int, int] | None:
    """The file at `db` (device, inode); None for a URL, or when there is none."""
    if not isinstance(db, Path):
        return None
    try:
        found = os.stat(db)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _reader_left() -> bool:
    """True when standard output is a pipe whose reader has closed it (poll says POLLERR)."""
    import select

    if not hasattr(select, "poll"):
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (a test's StringIO)
        return False
    poller = select.poll()
    poller.register(fd, 0)  # no event asked: only the errors poll always reports
    return any(mask & select.POLLERR for _, mask in poller.poll(0))


async def _while_there(follow: Coroutine[Any, Any, None], db: Path | str, opened: Any) -> None:
    """Run `follow` until it ends, until the log file at `db` is not the one opened, or
    until the reader of standard output has gone.

    A log deleted (or replaced, say by a copy) while followed stays open and readable, so
    `events --follow` showed nothing more, and waited forever: no process appends to a
    file that no longer has a name. It now stops, saying so (`ApiError`, exit code 1).
    And `fleet events -f | head -1` on a quiet log waited for the next event to learn,
    from a failed write, that `head` had gone: a `BrokenPipeError` now ends it as such
    a write does (quietly, in `api.cli.main`).
    """
    from ..errors import ApiError

    async def watch() -> None:
        while True:
            await asyncio.sleep(FOLLOW_CHECK_S)
            if _reader_left():
                raise BrokenPipeError
            if opened is None:
                continue
            now = await asyncio.to_thread(_identity, db)
            if now != opened:
                what = "deleted" if now is None else "replaced by another file"
                raise ApiError(f"the log {db} was {what} while it was followed: stopped")

    following = asyncio.ensure_future(follow)
    tasks = {following, asyncio.ensure_future(watch())}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()  # what ended it: the follow's own error, or ApiError from `watch`


async def _agent_named(store: EventStore, ref: str, run_id: str | None) -> str | None:
    """The id `ref` names: an agent's id, else the newest agent of that name (in `run_id`).

    Says on stderr which agent a name picked, or that nothing matches (then None).
    """
    from events import AgentCreated, EventFilter

    # An id first: any event of that agent (an ingested Claude Code session has no AgentCreated).
    if await store.read_all(where=EventFilter.of(agent_id=ref, run_id=run_id), limit=1):
        return ref
    where = EventFilter.of(types=["AgentCreated"], run_id=run_id)
    named: list[str] = []
    async for event in store.iter_all(where=where, lenient=True):
        data = event.data
        if isinstance(data, AgentCreated) and data.name == ref:
            named.append(data.agent_id)
    if not named:
        scope = f" of run {run_id}" if run_id else " in this log"
        print(f"fleet: no agent{scope} has the id or the name {ref!r}", file=sys.stderr)
        return None
    others = f" (the newest of {len(named)}: {', '.join(named)})" if len(named) > 1 else ""
    print(f"fleet: {ref!r} is a name: showing agent {named[-1]}{others}", file=sys.stderr)
    return named[-1]


async def _backlog(
    store: EventStore, after: int, head: int, where: EventFilter | None, tail: int | None
) -> AsyncIterator[RecordedEvent]:
    """The events after `after` up to `head` (only the last `tail` of them, when given)."""
    if tail is not None and where is None:
        after = max(after, head - tail)  # positions are gap-free
    if tail is None or where is None:
        async for event in store.iter_all(after=after, until=head, where=where, lenient=True):
            yield event
        return
    # With a filter the matching events are not contiguous: keep the last `tail` seen.
    last: deque[RecordedEvent] = deque(maxlen=tail)
    async for event in store.iter_all(after=after, until=head, where=where, lenient=True):
        last.append(event)
    for event in last:
        yield event


def _width() -> int | None:
    """The terminal's width, or None (no limit) when printing into a pipe or a file."""
    out = console()
    return out.width if out.is_terminal else None


def _print(renderable: RenderableType) -> None:
    """Print a table: fitted to a terminal, at its natural width into a pipe or a file."""
    out = console()
    if out.is_terminal:
        out.print(renderable)
        return
    width = out.measure(renderable, options=out.options.update(width=1000)).maximum
    # Console.print clamps `width` to the console's own: print through one as wide as the table.
    wide = make_console(highlight=False, width=max(out.width, width))
    wide.print(renderable, crop=False)


def _emit(events: Sequence[RecordedEvent], as_json: bool) -> int:
    """Print `events` (one line each) and flush; returns how many."""
    if not events:
        return 0
    if as_json:
        from events import encode_event

        sys.stdout.write("".join(encode_event(event).decode() + "\n" for event in events))
        sys.stdout.flush()
        return len(events)
    from rich.text import Text

    from ._render import event_line

    out = console()
    if out.is_terminal:
        lines = [event_line(event) for event in events]
        for line in lines:
            line.truncate(out.width, overflow="ellipsis")
        out.print(Text("\n").join(lines))
    else:
        # Into a pipe or a file: whole lines, no styling, without rich's per-line rendering.
        text = "".join(event_line(event).plain + "\n" for event in events)
        sys.stdout.write(printable(text))
    sys.stdout.flush()
    return len(events)
