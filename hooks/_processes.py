"""Commands that leave no process behind: the Bash tool's and command hooks'.

    proc = await start_command("make test", cwd=folder, env=env, stdout=PIPE, stderr=STDOUT)
    try:
        ...                                    # read its output, wait for it, time it out
    finally:
        await stop_command(proc)               # it and everything it started are gone

Notes (do not fix without reading this):
1. Which process is the subreaper. Not fleet's own: a subreaper inherits every
   orphan of every subprocess any library starts, and reaping those with
   `waitpid(-1)` would steal the exit statuses asyncio's child watcher (and
   `subprocess`) wait for. So each command runs under its own small reaper
   process (`_reaper.py`: Python with `-I -S`, standard library only), which is
   the child subreaper: whatever the command leaves behind (`setsid`, `nohup`,
   double forks) is re-parented to it, and when the command's shell ends, or
   when the reaper gets SIGTERM, it SIGKILLs and reaps all of it before it
   exits. asyncio only ever waits for the reaper, its own child. Starting the
   reaper costs an interpreter start (see BENCHMARKS.md, "Hooks").
2. Stopping: SIGTERM to the reaper, never SIGKILL first (that would hand its
   orphans to init); after `grace` seconds the whole process group gets SIGKILL
   as a last resort. The reaper also gets SIGTERM if fleet's process dies
   (`PR_SET_PDEATHSIG`).
3. Where there is no `prctl` (not Linux) the shell runs directly in its own
   process group and is stopped by SIGKILL to the group: a `setsid` child
   escapes there. No cgroup is used: a subreaper needs no privilege and no
   writable cgroup tree, and nothing a cgroup would catch escapes it.
4. Stopping reads the command's pipes to their end, keeping nothing: asyncio's
   `Process.wait()` returns only once its pipes are closed, and a pipe whose
   reader was cancelled (a hook's timeout, a Bash flood) with the command
   blocked writing to it was never read again: every such stop took its
   whole grace, twice, though the command was gone at once.
5. A start cancelled after the fork (the caller's task cancelled: a runtime
   closing, an agent interrupted) is finished, then stopped as in note 2. Left
   to asyncio, the cancelled start SIGKILLs the reaper alone (note 2's "never
   SIGKILL first"): the command it had begun lived on, re-parented to init (a
   `sleep 30 && echo done > marker.txt` wrote its marker half a minute after
   the runtime that started it had closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["CONTAINED", "REAPER_PATH", "command_argv", "start_command", "stop_command"]

REAPER_PATH = Path(__file__).with_name("_reaper.py")
"""The script that runs each command as a child subreaper (note 1)."""

CONTAINED = sys.platform == "linux" and bool(sys.executable)
"""True when commands run under the reaper; False where a `setsid` child can escape (note 3)."""

_Stream = int | IO[Any] | None


def command_argv(command: str | Sequence[str]) -> list[str]:
    """The argv that runs `command` under the reaper (or bare, note 3).

    A string is a shell command (`/bin/sh -c`); a sequence is an argv run as is.
    """
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    if not CONTAINED:
        return argv
    return [sys.executable, "-I", "-S", str(REAPER_PATH), *argv]


async def start_command(
    command: str | Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: _Stream = None,
    stdout: _Stream = None,
    stderr: _Stream = None,
) -> asyncio.subprocess.Process:
    """Start `command` (a shell command, or an argv) under a reaper, in its own session.

    Notes 1, 3 and 5. Always pair it with `stop_command` in a `finally`. Raises
    `OSError` if it cannot start.
    """
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *command_argv(command),
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        # Cancelled while it starts (note 5): let it start, then stop it as every command
        # is stopped, before the cancellation goes on.
        with contextlib.suppress(OSError):
            await stop_command(await starting)
        raise


def _signal(pid: int, signum: int, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


async def stop_command(proc: asyncio.subprocess.Process, *, grace: float = 5.0) -> None:
    """Make sure `proc` (from `start_command`) and every process it started are gone (note 2).

    Returns at once if it has ended (its reaper has killed what it left); waits
    at most about `2 * grace` seconds otherwise. Never raises for a process
    that is already gone.
    """
    if proc.returncode is not None:
        return
    # `wait()` returns only once the pipes close too: a flood nobody reads any more (a
    # timeout cancelled its reader) kept it for the whole grace, twice (note 4).
    draining = [
        asyncio.ensure_future(_discard(stream))
        for stream in (proc.stdout, proc.stderr)
        if stream is not None
    ]
    try:
        if CONTAINED:
            _signal(proc.pid, signal.SIGTERM, group=False)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await proc.wait()
            if proc.returncode is not None:
                return
        _signal(proc.pid, signal.SIGKILL, group=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await proc.wait()
    finally:
        for task in draining:
            task.cancel()


async def _discard(stream: asyncio.StreamReader) -> None:
    """Read `stream` to its end, keeping nothing (a pipe of a command being stopped).
    RuntimeError: the caller reads it still (a StreamReader takes one reader), and drains it."""
    with contextlib.suppress(OSError, ValueError, RuntimeError):
        while await stream.read(65536):
            pass
