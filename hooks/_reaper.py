"""Run one command as a child subreaper, and leave none of its processes behind.

    python -I -S _reaper.py PROGRAM [ARG ...]

Started by `hooks._processes.start_command`, never imported by fleet. It uses
the standard library only (it runs with `-S`, without site-packages).

1. It marks itself a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`), so any
   process the command leaves behind (`setsid`, `nohup`, a double fork) becomes
   its child instead of init's, and asks for SIGTERM when its parent dies
   (`PR_SET_PDEATHSIG`).
2. It starts PROGRAM with the environment it was given (read back from
   `/proc/self/environ`: Python's startup may have added `LC_CTYPE`) and the
   signals Python ignores (SIGPIPE, SIGXFSZ) reset to their defaults.
3. When PROGRAM ends, or when the reaper gets SIGTERM, SIGINT or SIGHUP, it
   sends SIGKILL to every process below it (found by their parent ids in
   `/proc`) and reaps them, again and again until it has no child left; then
   it exits as PROGRAM did (same code, or the same signal).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, *STOP_SIGNALS)
GIVE_UP_S = 10.0
"""How long the reaper keeps killing processes that will not die (e.g. stuck in the kernel)."""


class _Stop(Exception):  # not an error: how a stop signal interrupts the wait
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stopper() -> object:
    """A signal handler that interrupts the wait once; later signals change nothing."""
    fired: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if not fired:
            fired.append(signum)
            raise _Stop(signum)

    return handler


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _environ() -> dict[bytes, bytes]:
    """The environment this process was started with (note 2)."""
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return dict(os.environb)
    env: dict[bytes, bytes] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key] = value
    return env


def _descendants(me: int) -> list[int]:
    """Every process below `me`, from one reading of /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [me]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def kill_all(me: int) -> None:
    """SIGKILL everything below `me` and reap it, until no child is left (or `GIVE_UP_S`)."""
    give_up = time.monotonic() + GIVE_UP_S
    while True:
        for pid in _descendants(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue  # gone already
        reaped = False
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                break
            reaped = True
        if not reaped:
            if time.monotonic() > give_up:
                return
            time.sleep(0.002)


def _exit_like(status: int | None, signum: int | None) -> int:
    """Exit as the command did: the same signal, else its exit code."""
    if signum is None and status is not None and os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
    if signum is not None:
        import resource  # only here: no core file for a re-raised SIGSEGV or SIGABRT

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # their handlers cannot be set
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum  # a signal whose default is not to terminate
    return 127 if status is None else os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    """Run `argv` (note 1-3); returns the exit code to leave with."""
    if not argv:
        print("usage: _reaper.py PROGRAM [ARG ...]", file=sys.stderr)
        return 2
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    me = os.getpid()
    status: int | None = None
    stopped: int | None = None
    try:
        handler = _stopper()
        for signum in STOP_SIGNALS:
            signal.signal(signum, handler)  # type: ignore[arg-type]
        child = os.posix_spawnp(argv[0], argv, _environ(), setsigdef=RESET_SIGNALS)
        _, status = os.waitpid(child, 0)
    except _Stop as e:
        stopped = e.signum
    except OSError as e:
        print(f"{argv[0]}: {e.strerror or e}", file=sys.stderr)
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        kill_all(me)
    return _exit_like(status, stopped)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)
