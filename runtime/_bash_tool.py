"""The command tool, Claude Code's Bash: a shell in the workspace that leaves no process behind.

    Bash {command, timeout, description, run_in_background}     kind "command"

`timeout` is in milliseconds, as Claude Code's: 120000 (2 minutes) by default;
a value above 600000 (10 minutes) is lowered to it, not refused.
`run_in_background` is refused: fleet's Bash runs in the foreground. The
model sees `exit code N (Xs)` and the output (stdout and stderr together,
capped); a PostToolUse hook gets Claude Code's `{"stdout", "stderr",
"interrupted", "isImage"}` (stdout holds both streams; stderr is "").

Notes (do not fix without reading this):
1. The command runs under a reaper process (`hooks.start_command`): when it
   ends, times out, floods its output or is cancelled, every process it
   started is killed, `setsid` ones too. It is not a path sandbox: the
   command can reach outside the workspace like any shell. Confinement of
   paths is for the file tools.
2. The output is read to its end while the command is stopped (`stop_command`
   does it, hooks/_processes.py note 4): asyncio's `Process.wait()` returns
   only once its pipes are closed too, so after a flood (reading paused, the
   command blocked on a full pipe) the wait took the whole 5 s grace.
3. The command gets fleet's environment less its secrets: the API's token, the
   export signing key, the model's key and auth headers, and a `FLEET_DB`
   holding a password. The model writes the command: one that printed `env`
   (or sent it somewhere) handed over what lets anyone drive the fleet's API,
   forge a signed export or spend on the account. Commands run by hooks are
   the user's own and keep everything; so does a Claude Code engine, which
   needs the key, and whose Bash is Claude Code's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from events import without_password
from hooks import start_command, stop_command

from ._tools import ToolContext, ToolKind, ToolResult
from .errors import ToolError, WorkspaceMissing

__all__ = ["DEFAULT_TIMEOUT_MS", "MAX_OUTPUT_CHARS", "MAX_TIMEOUT_MS", "Bash"]

DEFAULT_TIMEOUT_MS = 120_000
MAX_TIMEOUT_MS = 600_000
MAX_OUTPUT_CHARS = 30_000
MIN_FLOOD_BYTES = 1024 * 1024
_KILLED = "the command and every process it started were killed"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BashInput(_Input):
    command: str = Field(min_length=1, description="The command to run, in the workspace.")
    timeout: float | None = Field(
        default=None,
        gt=0,
        strict=True,  # a number: `true` was taken for 1 ms, and "5000" for 5000
        description="Timeout in milliseconds (default 120000, max 600000).",
    )
    description: str | None = Field(
        default=None, description="What the command does, in 5-10 words."
    )
    run_in_background: bool = Field(
        default=False, strict=True, description="Not supported: always false."
    )

    @field_validator("command")
    @classmethod
    def _no_nul(cls, command: str) -> str:
        # No program can be given one (execve's strings end at NUL): it failed as a ValueError.
        if "\x00" in command:
            raise ValueError("a command cannot hold a NUL byte (\\0)")
        return command

    @property
    def timeout_s(self) -> float:
        """The timeout in seconds, lowered to the maximum."""
        return min(self.timeout or DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS) / 1000


def _from_run_command(raw: Mapping[str, Any]) -> dict[str, Any]:
    if "timeout_s" in raw and "timeout" in raw:  # one silently won
        raise ValueError("timeout_s and timeout are both given (timeout is in milliseconds)")
    out = {k: v for k, v in raw.items() if k != "timeout_s"}
    seconds = raw.get("timeout_s")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        out["timeout"] = seconds * 1000
    elif seconds is not None:
        out["timeout_s"] = seconds  # refused by validation, under its own name
    return out


# Fleet's own secrets and the model's credentials (note 3): no command needs them.
_SECRETS = frozenset({
    "FLEET_TOKEN", "FLEET_EXPORT_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
})  # fmt: skip


def _command_env() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _SECRETS and not (name == "FLEET_DB" and without_password(value) != value)
    }
    # `python` in a command is the interpreter running fleet (its venv's bin comes first).
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.update(PYTHONDONTWRITEBYTECODE="1", GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat", PAGER="cat")
    return env


async def _drain(stream: asyncio.StreamReader, kept: bytearray, limit: int, flood: int) -> bool:
    """Read `stream` to its end, keeping the first `limit` bytes; False past `flood` bytes."""
    seen = 0
    while chunk := await stream.read(65536):
        seen += len(chunk)
        if len(kept) < limit:
            kept.extend(chunk[: limit - len(kept)])
        if seen > flood:
            return False
    return True


class Bash:
    """Bash: a shell command in the workspace, with a timeout and an output cap."""

    name: ClassVar[str] = "Bash"
    kind: ClassVar[ToolKind] = "command"
    description: ClassVar[str] = (
        "Runs a shell command with the workspace as the current folder (stdout and stderr "
        "together, capped). Killed after `timeout` milliseconds (default 120000, max 600000). "
        "A non-zero exit code is an error."
    )
    input_model: ClassVar[type[BaseModel]] = BashInput
    aliases: ClassVar[Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
        "run_command": _from_run_command
    }

    def __init__(
        self, *, max_output_chars: int = MAX_OUTPUT_CHARS, stop_grace: float = 5.0
    ) -> None:
        self.max_output_chars = max_output_chars
        self.stop_grace = stop_grace  # how long a stopped command may take to go (note 1)
        # Output past the cap is read and dropped; this much more means a runaway command.
        self.flood_bytes = max(MIN_FLOOD_BYTES, 32 * max_output_chars)

    async def __call__(self, input: BashInput, ctx: ToolContext) -> ToolResult:
        if input.run_in_background:
            raise ToolError(
                "run_in_background is not supported: fleet's Bash runs in the foreground"
            )
        try:
            await asyncio.to_thread(ctx.workspace.check)
            started = time.perf_counter()
            proc = await start_command(
                input.command,
                cwd=ctx.workspace.root,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=_command_env(),
            )
        except (WorkspaceMissing, OSError) as e:
            raise ToolError(f"cannot run the command: {e}") from e
        assert proc.stdout is not None
        kept = bytearray()
        verdict = "exit"
        try:
            async with asyncio.timeout(input.timeout_s):
                if await _drain(proc.stdout, kept, self.max_output_chars * 4, self.flood_bytes):
                    await proc.wait()
                else:
                    verdict = "flood"
        except TimeoutError:
            verdict = "timeout"
        finally:
            # Every process it started: gone. The stop reads the pipe meanwhile (note 2); what
            # is left is read so its transport closes now (after a flood or a cancellation
            # nothing else would, and it would leak until GC).
            await stop_command(proc, grace=self.stop_grace)
            with contextlib.suppress(TimeoutError, OSError, ValueError, RuntimeError):
                await asyncio.wait_for(proc.stdout.read(), 2)
        return self._result(input, verdict, proc.returncode, kept, time.perf_counter() - started)

    def _result(
        self,
        input: BashInput,
        verdict: str,
        code: int | None,
        kept: bytearray,
        seconds: float,
    ) -> ToolResult:
        output = kept.decode("utf-8", errors="replace")
        if len(output) > self.max_output_chars:
            cut = len(output) - self.max_output_chars
            output = (
                output[: self.max_output_chars]
                + f"\n[... output truncated: {cut}+ more characters]"
            )
        response = {
            "stdout": output,
            "stderr": "",
            "interrupted": verdict != "exit",
            "isImage": False,
        }
        if verdict == "timeout":
            head = f"timed out after {input.timeout_s:g}s: {_KILLED}"
            return ToolResult(f"{head}\n{output}".rstrip(), is_error=True, response=response)
        if verdict == "flood":
            head = f"output over {self.flood_bytes} bytes: {_KILLED}"
            return ToolResult(f"{head}\n{output}".rstrip(), is_error=True, response=response)
        head = f"exit code {code} ({seconds:.2f}s)"
        return ToolResult(f"{head}\n{output}".rstrip(), is_error=code != 0, response=response)
