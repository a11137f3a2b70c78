"""The three kinds of hook: an in-process Python callable, a shell command, an HTTP URL.

Each runner turns one invocation into a `Verdict` and never raises for what the
hook did: a crash, a hang or garbage output is a verdict ("error", "timeout").

Notes (do not fix without reading this):
1. A *sync* Python hook runs directly on the event loop, not in a thread: a
   thread hop costs more than the whole < 50 µs budget, and most hooks are
   cheap checks. Its timeout cannot be enforced there (nothing can interrupt
   it), so a sync hook that does I/O or heavy work must be added with
   `thread=True`; it then runs in `asyncio.to_thread` under its timeout (on a
   timeout the thread is abandoned, not killed: Python threads cannot be).
   An async hook runs on the loop under `asyncio.timeout`.
2. A command runs under `start_command` (`_processes.py`): a reaper process
   that is a child subreaper. When the hook's shell ends, times out or is
   cancelled, every process it started is killed and reaped, a `setsid` or
   SIGTERM-ignoring one too. Its stdout and stderr are drained to the end but
   only the first `MAX_OUTPUT_BYTES` are kept, so a hook spewing output cannot
   fill memory; an answer cut there that cannot be read says it was cut.
3. Exec form (`args` set) runs `command` found on PATH with `args` as its
   argv, no shell; `${CLAUDE_PROJECT_DIR}` (and `${FLEET_PROJECT_DIR}`) are put
   into `command` and each argument as plain strings. Shell form runs the
   string with `/bin/sh -c` (Claude Code's shell form on Linux and macOS), or
   with `bash -c` / PowerShell when `shell` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from ._config import HookSpec
from ._output import Verdict, error_verdict, exit2_verdict, verdict_from_text, verdict_from_value
from ._points import HookPoint
from ._processes import start_command, stop_command

__all__ = [
    "MAX_OUTPUT_BYTES",
    "Call",
    "CommandHook",
    "CommandOutput",
    "HttpHook",
    "PythonHook",
    "PythonHookFn",
    "Runner",
    "command_line",
]

MAX_OUTPUT_BYTES = 1024 * 1024
"""The most of a command's stdout (or stderr, or an HTTP body) that is kept."""

_READ_CHUNK = 64 * 1024
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")

PythonHookFn = Callable[[dict[str, Any]], object]
"""`fn(payload) -> dict | HookOutput | None`, or an awaitable of one."""


@dataclass(slots=True)
class Call:
    """One dispatch: the point, the payload, and the payload's JSON body (encoded once)."""

    point: HookPoint
    payload: dict[str, Any]
    body: bytes | None = None

    def json_body(self) -> bytes:
        if self.body is None:
            self.body = json.dumps(
                self.payload, ensure_ascii=False, separators=(",", ":"), default=str
            ).encode()
        return self.body


def _timeout_verdict(timeout: float, what: str = "") -> Verdict:
    return Verdict("timeout", f"no answer within {timeout:g} s{what}")


@dataclass(slots=True)
class PythonHook:
    """An in-process hook (note 1): `fn(payload)` returns a dict, a `HookOutput` or None."""

    fn: PythonHookFn
    name: str
    timeout: float
    thread: bool = False
    kind: Literal["python"] = "python"
    inline: bool = field(init=False)

    def __post_init__(self) -> None:
        self.inline = not self.thread and not inspect.iscoroutinefunction(self.fn)

    async def run(self, call: Call) -> Verdict:
        if self.thread:
            try:
                value = await asyncio.wait_for(
                    asyncio.to_thread(self.fn, call.payload), self.timeout
                )
            except TimeoutError:
                return _timeout_verdict(self.timeout, " (its thread is abandoned)")
        else:
            value = self.fn(call.payload)
        if inspect.isawaitable(value):
            try:
                async with asyncio.timeout(self.timeout):
                    value = await value
            except TimeoutError:
                return _timeout_verdict(self.timeout)
        return verdict_from_value(call.point, value)


@dataclass(slots=True)
class CommandOutput:
    """What a command hook has printed so far (kept by the caller when the hook is cut)."""

    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)


async def _read_capped(stream: asyncio.StreamReader | None, kept: bytearray) -> bool:
    """Read `stream` to its end into `kept`, up to `MAX_OUTPUT_BYTES`; True if it was cut."""
    if stream is None:
        return False
    cut = False
    while chunk := await stream.read(_READ_CHUNK):
        room = MAX_OUTPUT_BYTES - len(kept)
        cut = cut or len(chunk) > room
        kept += chunk[: max(room, 0)]
    return cut


def _answer(point: HookPoint, body: bytes, cut: bool) -> Verdict:
    """A hook's answer read from `body`; one that was `cut` and so is unreadable says so."""
    verdict = verdict_from_text(point, body.decode("utf-8", errors="replace"))
    if cut and verdict.decision == "error":
        why = f"the answer is over {MAX_OUTPUT_BYTES} bytes and was read that far: "
        return error_verdict(why + (verdict.reason or ""))
    return verdict


async def _feed(stdin: asyncio.StreamWriter | None, data: bytes) -> None:
    if stdin is None:
        return
    # A hook that exits without reading its stdin is fine.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.close()
        await stdin.wait_closed()


_PLACEHOLDER = re.compile(r"\$\{(CLAUDE_PROJECT_DIR|FLEET_PROJECT_DIR)\}")


def _placeholders(text: str, env: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: env.get(m.group(1), ""), text)


def command_line(spec: HookSpec, env: Mapping[str, str]) -> list[str]:
    """The argv that runs a command hook (note 3). Raises `OSError` for a missing program."""
    path = env.get("PATH", os.defpath)
    if spec.args is not None:
        program = _placeholders(spec.target, env)
        found = program if os.sep in program else shutil.which(program, path=path)
        if found is None:
            raise FileNotFoundError(f"no executable named {program!r} on PATH")
        return [found, *(_placeholders(a, env) for a in spec.args)]
    if spec.shell is None:
        return ["/bin/sh", "-c", spec.target]
    if spec.shell == "bash":
        bash = shutil.which("bash", path=path)
        if bash is None:
            raise FileNotFoundError("bash is not installed")
        return [bash, "-c", spec.target]
    pwsh = shutil.which("pwsh", path=path) or shutil.which("powershell", path=path)
    if pwsh is None:
        raise FileNotFoundError("PowerShell (pwsh) is not installed")
    return [pwsh, "-NoProfile", "-NonInteractive", "-Command", spec.target]


@dataclass(slots=True)
class CommandHook:
    """A command: the payload as JSON on stdin, the answer in its exit code and output."""

    spec: HookSpec
    env: Mapping[str, str]
    project_dir: str | None
    kind: Literal["command"] = "command"
    inline: bool = False

    @property
    def name(self) -> str:
        if self.spec.args is None:
            return self.spec.target
        return " ".join([self.spec.target, *self.spec.args])

    @property
    def timeout(self) -> float:
        return self.spec.timeout

    def _cwd(self, payload: Mapping[str, Any]) -> str | None:
        for folder in (payload.get("cwd"), self.project_dir):
            if isinstance(folder, str) and folder and os.path.isdir(folder):
                return folder
        return None

    async def run(self, call: Call, output: CommandOutput | None = None) -> Verdict:
        """Run the command; what it prints goes into `output` as it comes (note 2)."""
        try:
            proc = await start_command(
                command_line(self.spec, self.env),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self._cwd(call.payload),
                env=self.env,
            )
        except OSError as e:
            return error_verdict(f"cannot start: {e}")
        return await self._finish(proc, call, output if output is not None else CommandOutput())

    async def _finish(
        self, proc: asyncio.subprocess.Process, call: Call, output: CommandOutput
    ) -> Verdict:
        try:
            async with asyncio.timeout(self.spec.timeout):
                _, cut, _ = await asyncio.gather(
                    _feed(proc.stdin, call.json_body()),
                    _read_capped(proc.stdout, output.stdout),
                    _read_capped(proc.stderr, output.stderr),
                )
                code = await proc.wait()
        except TimeoutError:
            return _timeout_verdict(
                self.spec.timeout, " (it and every process it started were killed)"
            )
        finally:
            await stop_command(proc)  # note 2: at once if it ended, else kills what is left
        stderr = output.stderr.decode("utf-8", errors="replace")
        if code == 0:
            return _answer(call.point, bytes(output.stdout), cut)
        if code == 2:
            return exit2_verdict(call.point, stderr)
        detail = stderr.strip()[:500] or "(no stderr)"
        if code < 0:
            return error_verdict(f"killed by signal {-code}: {detail}")
        return error_verdict(f"exit code {code}: {detail}")


def _expand(template: str, allowed: frozenset[str], environ: Mapping[str, str]) -> str:
    # Claude Code's rule: only listed variables are expanded; others become "".
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return environ.get(name, "") if name in allowed else ""

    return _ENV_VAR.sub(sub, template)


@dataclass(slots=True)
class HttpHook:
    """An HTTP URL: the payload POSTed as JSON, the answer in a 2xx response's body."""

    spec: HookSpec
    client: Callable[[], httpx.AsyncClient]
    headers: dict[str, str] = field(init=False)
    kind: Literal["http"] = "http"
    inline: bool = False

    def __post_init__(self) -> None:
        allowed = frozenset(self.spec.allowed_env_vars)
        self.headers = {"content-type": "application/json"}
        for key, template in self.spec.headers:
            self.headers[key] = _expand(template, allowed, os.environ)

    @property
    def name(self) -> str:
        return self.spec.target

    @property
    def timeout(self) -> float:
        return self.spec.timeout

    async def run(self, call: Call) -> Verdict:
        timeout = self.spec.timeout
        try:
            async with asyncio.timeout(timeout):
                client = self.client()
                request = client.build_request(
                    "POST",
                    self.spec.target,
                    content=call.json_body(),
                    headers=self.headers,
                    timeout=timeout,
                )
                response = await client.send(request, stream=True)
                try:
                    body, cut = bytearray(), False
                    async for chunk in response.aiter_bytes():
                        room = MAX_OUTPUT_BYTES - len(body)
                        body += chunk[:room]
                        if len(chunk) > room:
                            cut = True
                            break
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return _timeout_verdict(timeout)
        except httpx.HTTPError as e:
            return error_verdict(f"request failed: {type(e).__name__}: {e}")
        if not response.is_success:
            text = bytes(body[:300]).decode("utf-8", errors="replace").strip()
            return error_verdict(f"HTTP {response.status_code}" + (f": {text}" if text else ""))
        return _answer(call.point, bytes(body), cut)


Runner = PythonHook | CommandHook | HttpHook
