"""The `fleet` command line.

Each group of commands lives in its own module (`_run`, `_chat`, `_serve`, `_forward`,
`_views`, `_replay`, `_otel`, `_simulator`, `_approvals`) with a
`configure(command, parser)` function that adds a command's arguments and sets
its `func(args)`, which returns the process exit code. Every command takes
`--db PATH` (else `FLEET_DB`, else `.fleet/fleet.db`) and, where it prints
data, `--json`.

Notes (do not fix without reading this):
1. `fleet` starts at once. Claude Code runs `fleet hook-forward` on every tool
   call (twice: Pre and Post), so this package and every command module import
   only the standard library at module level, and each command imports what it
   needs (the log, the runtime, rich, the server) inside its function.
   `COMMANDS` names each command's module and help line: `fleet --help` lists
   them without importing any, and `fleet CMD` imports only CMD's module.
   `api/__init__` is lazy for the same reason. tests/cli/test_cli_start.py
   fails if `fleet hook-forward` imports anything beyond the standard library
   and `api.cli._forward`; `bench/cli.py` prints the start-up times.
"""

from __future__ import annotations

import argparse
import collections.abc
import importlib
import sys

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("_run", "run a task with a pattern or the orchestrator agent"),
    "demo": ("_run", "scout-plan-build on a fresh copy of the sample repository, offline"),
    "chat": ("_chat", "talk to the orchestrator: a conversation kept in the log, slash commands"),
    "resume": ("_run", "resume interrupted runs and working agents (after a crash or Ctrl-C)"),
    "abandon": ("_run", "give up on an interrupted run: delete its agents, mark it failed"),
    "serve": ("_serve", "serve the API, the SSE stream and the dashboard"),
    "worker": ("_worker", "drive agents taken by lease from a shared log, without HTTP"),
    "simulator": ("_simulator", "run the offline Messages-API simulator alone; print its base URL"),
    "hook-forward": (
        "_forward",
        "a Claude Code hook command: post the payload on stdin to a fleet server",
    ),
    "agents": ("_views", "the agents: status, context, tokens, cost, tools"),
    "board": ("_views", "the task board: PLAN BUILD REVIEW SHIP DONE FAILED"),
    "runs": ("_views", "the runs: pattern, status, duration, cost"),
    "events": ("_views", "the event log, one line per event; --follow to watch it live"),
    "replay": ("_replay", "a run's timeline, any read model at any position, or a re-execution"),
    "export": ("_replay", "write a run as checksummed JSON Lines (to import into another log)"),
    "import": ("_replay", "load a run exported by `fleet export` into this log"),
    "otel": ("_otel", "OpenTelemetry: send a run to a tracing back end as GenAI spans"),
    "approvals": ("_approvals", "tool calls on hold for a person (a hook answered ask)"),
    "approve": ("_approvals", "allow a tool call on hold (its id from `fleet approvals`)"),
    "deny": ("_approvals", "deny a tool call on hold, saying why (--reason)"),
}
"""Every command, in the order `fleet --help` lists them: (module in api.cli, help line)."""


def build_parser(
    commands: collections.abc.Iterable[str] | None = None, *, configure: bool = True
) -> argparse.ArgumentParser:
    """The argument parser with `commands` (default: all), each configured unless told not.

    `main()` builds it with the one command being run, or, for `fleet --help`
    and mistakes, with every command listed and none configured (note 1).
    Raises `KeyError` for a name not in `COMMANDS`.
    """
    parser = argparse.ArgumentParser(
        prog="fleet",
        description="An event-sourced runtime for fleets of LLM agents, observed through hooks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if commands is None else commands:
        module, help_line = COMMANDS[name]
        sub = subparsers.add_parser(name, help=help_line, description=help_line)
        if configure:
            importlib.import_module(f"{__name__}.{module}").configure(name, sub)
    return parser


def _command_in(argv: collections.abc.Sequence[str]) -> str | None:
    # The top-level options (-h, -v) take no value: the first other word is the command.
    for word in argv:
        if word in ("-h", "--help"):
            return None  # `fleet --help` lists every command
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: collections.abc.Sequence[str] | None = None) -> int:
    """Run `fleet` with `argv` (default: the process's arguments); returns the exit code."""
    _fill_closed_streams()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    if command != "hook-forward" and (bad := _not_utf8(argv)) is not None:
        # Python hands such bytes over as lone surrogates, which no event can hold: `fleet
        # agents --run` and `fleet replay` ended in a UnicodeEncodeError traceback.
        print(
            f"fleet: error: argument {bad!r} is not valid UTF-8 (fleet's log holds UTF-8 text)",
            file=sys.stderr,
        )
        return 2
    parser = build_parser(configure=False) if command is None else build_parser([command])
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        # argparse exits 2 on a usage error, and exit code 2 is a *block* in Claude
        # Code's hook contract: a typo in a hook-forward command line (or an option
        # an older fleet lacks) would block every tool call and prompt of the session
        # it observes. Its usage error is said on stderr; it exits 0 as ever.
        if command == "hook-forward" and e.code not in (0, None):
            return 0
        raise
    if args.verbose or args.command != "hook-forward":  # hook-forward logs nothing (note 1)
        import logging

        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()
    except Exception as e:
        from events.errors import FleetError

        if not isinstance(e, FleetError):
            raise
        print(f"fleet: error: {e}", file=sys.stderr)
        return 1
    return code


def _not_utf8(argv: collections.abc.Sequence[str]) -> bytes | None:
    """The first argument that is not valid UTF-8, as the bytes it was given as; else None."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return arg.encode("utf-8", "surrogateescape")
    return None


def _fill_closed_streams() -> None:
    """Give each standard stream the process was started without (`<&-`, `>&-`) /dev/null.

    Python leaves `sys.stdin` (`stdout`, `stderr`) None then, and every command that
    used one failed with an AttributeError traceback (`fleet import - <&-`, `fleet chat
    <&-`, `fleet runs --json >&-`); with /dev/null, stdin reads as empty and what is
    written is dropped, as `fleet runs >&-` did already. A descriptor taken meanwhile by
    another file is left alone.
    """
    import os

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is not None or _is_open(fd):  # open again: not ours to replace
            continue
        devnull = os.open(os.devnull, os.O_RDONLY if mode == "r" else os.O_WRONLY)
        if devnull != fd:  # the lowest free descriptor: fd, unless a lower one is closed too
            os.dup2(devnull, fd)
            os.close(devnull)
        setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 (the process's own stream)


def _reader_gone() -> int:
    """Exit code 1, quietly, for output whose reader went away (`fleet agents --json | head`).

    Nothing is wrong to say: the reader has what it wanted. Standard output is
    pointed at /dev/null, else the interpreter's last flush of what is still
    buffered fails again on the way out and prints a second broken pipe (Python's
    documented recipe); exit code 1, as rich's console gives for the same case.
    """
    import contextlib
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    # Standard output not a file (a test's StringIO): nothing to flush there.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


def _is_open(fd: int) -> bool:
    import os

    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
