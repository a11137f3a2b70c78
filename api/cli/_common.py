"""What every `fleet` command shares: where the log is, JSON output, the console.

Standard library only at import (`api/cli/__init__.py`, note 1): the rich
console is made on first use.

What `console().print` (or `rule`, a table's `str` cell) is given is rich
markup: a string from the person, the log, a model or the file system (a task,
a path, a name, a summary) goes through `rich.markup.escape`, or in a `Text`,
so that a `[/]` in it is text, not a `MarkupError`. And what the console prints
is shown, not obeyed: its control characters (an escape sequence in a task, a
model's output or an imported run, a BEL, a carriage return) print as their
control pictures (`␛`, `␇`, `␍`), so that no text from the log can clear the
screen, retitle the terminal or overwrite a line; only rich's own styling and
cursor control reach the terminal as codes (`make_console`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._limits import actor, reason

if TYPE_CHECKING:
    from rich.console import Console

    from events import EventStore

__all__ = [
    "DEFAULT_DB",
    "add_common",
    "console",
    "log_missing",
    "make_console",
    "not_negative",
    "open_to_read",
    "percent",
    "port",
    "positive",
    "print_json",
    "printable",
    "require_log",
    "resolve_db",
    "resolve_run",
]

DEFAULT_DB = Path(".fleet") / "fleet.db"


@functools.cache
def console() -> Console:
    """The console every command prints through (made, and rich imported, on first use)."""
    return make_console(stderr=False, highlight=False)


# C0 controls but tab and newline, DEL, and C1 controls: their control pictures (U+2400 on),
# and U+FFFD for C1, which has none. NUL included: a terminal drops it, a file keeps it.
_CONTROL_PICTURES = (
    {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)}
    | {0x7F: 0x2421}
    | {c: 0xFFFD for c in range(0x80, 0xA0)}
)


def printable(text: str) -> str:
    """`text` with its control characters as visible symbols (the module's docstring)."""
    return text.translate(_CONTROL_PICTURES)


def shell_word(text: str) -> str:
    """`text` as one word of a shell command a user copies (a path with a space, a URL
    with `&` and `?`), escaped for rich's markup."""
    import shlex

    from rich.markup import escape

    return escape(shlex.quote(text))


def make_console(**options: Any) -> Console:
    """A rich `Console` that prints text's control characters as symbols (see `printable`).

    Rich writes a segment's text as it is and its style as escape codes it makes
    itself, so the text of every segment that is not rich's own control (cursor
    moves of a live display) is made printable as the buffer is rendered.
    """
    return _console_class()(**options)


@functools.cache
def _console_class() -> type[Console]:
    from rich.console import Console
    from rich.segment import Segment

    class ShownConsole(Console):
        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            return super()._render_buffer(
                segment if segment.control else segment._replace(text=printable(segment.text))
                for segment in buffer
            )

    return ShownConsole


def resolve_db(arg: str | None) -> Path | str:
    """The log: `--db`, else `FLEET_DB`, else `.fleet/fleet.db` in the current folder.

    A path comes back as a `Path`, a URL (`postgresql://...`, `sqlite:///...`)
    as the `str` given, for `events.open_store`.
    """
    given = arg or os.environ.get("FLEET_DB")
    if not given:
        return DEFAULT_DB
    return given if "://" in given else Path(given)


def log_missing(db: Path | str) -> bool:
    """True when `db` is a path with no file (a URL names a server: opening tells)."""
    return isinstance(db, Path) and not db.is_file()


def no_log(db: Path | str) -> Exception:
    """The error for a log that is not at `db` (a URL shown without its password)."""
    from events import without_password

    from ..errors import ApiError

    return ApiError(
        f"no fleet log at {without_password(str(db))} "
        "(run `fleet demo` to make one, or pass --db PATH / set FLEET_DB)"
    )


def existing_log(arg: str | None) -> Path | str:
    """The log `--db` names (`resolve_db`); `ApiError` when it is a path with no file."""
    db = resolve_db(arg)
    if log_missing(db):
        raise no_log(db)
    return db


async def require_log(db: Path | str) -> None:
    """Raise `ApiError` when there is no log at `db`. A command that acts on a log must
    check first: opening one for writing makes it, so a mistyped path or PostgreSQL
    schema became a new empty log ("nothing to resume", "no agents", exit code 0)."""
    from events import LogNotFound, open_store

    from ..errors import ApiError

    if isinstance(db, Path):
        missing = not await asyncio.to_thread(db.is_file)
    else:  # a URL: asked read-only, which never creates a log
        try:
            async with open_store(db, readonly=True):
                missing = False
        except LogNotFound as e:
            if e.reason:  # the server has no such database: `fleet demo` would not help
                raise ApiError(str(e)) from None
            missing = True
    if missing:
        raise no_log(db)


def add_common(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """Add `--db` (and `--json` where the command prints data) to a subcommand."""
    parser.add_argument(
        "--db",
        metavar="PATH|URL",
        type=_db_argument,
        help="the log: a file, or postgresql://user@host/db (default: $FLEET_DB, "
        "else .fleet/fleet.db)",
    )
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _db_argument(value: str) -> str:
    """`--db`'s value; a blank one is refused (it fell back to the default log silently)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty: give a file or a postgresql:// URL")
    return value


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout, one document."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


@contextlib.asynccontextmanager
async def open_to_read(db: str | Path) -> AsyncIterator[EventStore]:
    """The log at `db` for a command that only reads it: for writing if it can be (the
    projections then keep their checkpoints for the next command), else read-only (a
    read-only file, folder or disk). Raises `ApiError` when there is no log at `db`
    (`require_log`: none is made), else what `open_store` raises."""
    from events import StoreUnavailable, open_store

    await require_log(db)
    try:
        store = await open_store(db).open()
    except StoreUnavailable:
        store = await open_store(db, readonly=True).open()
    async with store:
        yield store


async def resolve_run(store: EventStore, run: str) -> str:
    """The run id `run` names, given with or without a `run-` prefix (the README's
    `run-<id>` is the run's stream), as every command taking a run id reads it.
    Raises `RunNotFound`."""
    from events import RunNotFound

    for candidate in dict.fromkeys((run, run.removeprefix("run-"), f"run-{run}")):
        if candidate and await store.stream_version(f"run-{candidate}"):
            return candidate
    raise RunNotFound(run)


# -- argparse types: a number the command can use, or a usage error saying why ----------


def _number(kind: type[float], text: str) -> float:
    """`text` as a finite number of `kind`, else `ArgumentTypeError` saying why."""
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive(kind: type[float]) -> Callable[[str], float]:
    """An argparse type: a number of `kind` (int or float) above 0, else a clear error."""

    def positive(text: str) -> float:
        value = _number(kind, text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value

    return positive


def at_least(minimum: float, why: str) -> Callable[[str], float]:
    """An argparse type: a number of seconds, `minimum` or more (`why` says what less does)."""

    def at_least(text: str) -> float:
        value = _number(float, text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, not {text}: {why}")
        return value

    return at_least


def folder(text: str) -> str:
    """An argparse type: a folder that exists. Opening a runtime makes `.fleet/` inside its
    workspace, so a mistyped `--workspace` became a new folder tree (and a file a traceback)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"not a folder: {text}")
    return text


def not_negative(text: str) -> float:
    """An argparse type: a number, 0 or more."""
    value = _number(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def percent(text: str) -> float:
    """An argparse type: a share of 100, above 0."""
    value = _number(float, text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 100, not {text}")
    return value


def log_position(text: str) -> int:
    """An argparse type: a position of the log, a whole number 0 or more."""
    value = int(text) if text.isdigit() else -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a position is a whole number >= 0, got {text!r}")
    return value


def reason_text(text: str) -> str:
    """An argparse type: why a person decided so, by the API's rule (`api._limits.reason`)."""
    try:
        return reason(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def actor_text(text: str) -> str:
    """An argparse type: who does something, by the API's rule (`api._limits.actor`)."""
    try:
        return actor(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)
