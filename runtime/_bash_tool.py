"""The command tool: run_command, a shell in the workspace that leaves no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from hooks import start_command, stop_command

from ._tools import ToolContext, ToolResult
from .errors import ToolError, WorkspaceMissing

__all__ = ["MAX_OUTPUT_CHARS", "RunCommand"]

MAX_OUTPUT_CHARS = 30_000
MIN_FLOOD_BYTES = 1024 * 1024
_KILLED = "the command and every process it started were killed"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunCommandInput(_Input):
    command: str = Field(min_length=1, description="Shell command, run in the workspace.")
    timeout_s: float = Field(
        default=120.0, gt=0, le=600, description="Seconds before it is killed."
    )


def _command_env() -> dict[str, str]:
    env = dict(os.environ)
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


class RunCommand:
    """run_command: a shell command in the workspace, with a timeout and an output cap."""

    name: ClassVar[str] = "run_command"
    description: ClassVar[str] = (
        "Run a shell command with the workspace as the current folder (stdout and stderr "
        "together, capped). Killed after `timeout_s` seconds. Non-zero exit is an error."
    )
    input_model: ClassVar[type[BaseModel]] = RunCommandInput

    def __init__(self, *, max_output_chars: int = MAX_OUTPUT_CHARS) -> None:
        self.max_output_chars = max_output_chars
        # Output past the cap is read and dropped; this much more means a runaway command.
        self.flood_bytes = max(MIN_FLOOD_BYTES, 32 * max_output_chars)

    async def __call__(self, input: RunCommandInput, ctx: ToolContext) -> ToolResult:
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
            await stop_command(proc)  # note 2: every process it started is gone
            # Read the pipe to its end so its transport closes now: after a flood (reading
            # paused) or a cancellation nothing else would, and it would leak until GC.
            with contextlib.suppress(TimeoutError, OSError, ValueError):
                await asyncio.wait_for(proc.stdout.read(), 2)
        return self._result(input, verdict, proc.returncode, kept, time.perf_counter() - started)

    def _result(
        self,
        input: RunCommandInput,
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
        if verdict == "timeout":
            head = f"timed out after {input.timeout_s:g}s: {_KILLED}"
            return ToolResult(f"{head}\n{output}".rstrip(), is_error=True)
        if verdict == "flood":
            head = f"output over {self.flood_bytes} bytes: {_KILLED}"
            return ToolResult(f"{head}\n{output}".rstrip(), is_error=True)
        head = f"exit code {code} ({seconds:.2f}s)"
        return ToolResult(f"{head}\n{output}".rstrip(), is_error=code != 0)
