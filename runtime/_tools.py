"""Tools: the `Tool` protocol, the `Toolbox` an agent is given, and the worker tools.

A tool is a name, a description, a pydantic input model (its JSON schema is the
Messages API's `input_schema`) and an async call. The worker tools run inside
the agent's workspace: read_file, write_file, edit_file, list_files, grep,
run_command. An orchestrator gets other tools (CRUD for agents) in its own
`Toolbox`; nothing here knows about them.

Notes (do not fix without reading this):
1. A tool reports an expected failure by raising `ToolError` (or a subclass):
   the toolbox turns it into an error result the model sees. Any other
   exception is a bug; the agent's tool-call step (`_tool_calls.py`) still
   shows it to the model as a tool error and logs its traceback, so no agent
   is left working by it.
2. `run_command` runs a shell in the workspace under a reaper process
   (`hooks.start_command`): when the command ends, times out, floods its output
   or is cancelled, every process it started is killed, `setsid` ones too. It
   is not a path sandbox: the command can reach outside the workspace like any
   shell. Confinement of paths is for the file tools.
3. The file tools do their work in `Sandbox` (`_sandbox.py`: paths walked
   without a check-then-use race, writes to fleet's control files, `.git`, the
   log and foreign hard links refused) and `grep` in `_search.py` (RE2, linear
   time, streamed, stopped at `MAX_GREP_SECONDS` or on cancellation), all in a
   thread; those modules know no tool names. `grep` and `list_files` skip hidden
   files and folders (`.git`, `.fleet`, ...) and `__pycache__` while walking, as
   ripgrep does; a hidden path named explicitly is searched.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events import EventModel, RecordedEvent
from hooks import start_command, stop_command

from ._sandbox import MAX_READ_BYTES, Sandbox
from ._search import compile_search, search
from ._workspace import Workspace
from .errors import ToolError, ToolInputInvalid, WorkspaceMissing

__all__ = [
    "WORKER_TOOLS",
    "EditFile",
    "Grep",
    "ListFiles",
    "ReadFile",
    "RunCommand",
    "Tool",
    "ToolContext",
    "ToolResult",
    "Toolbox",
    "WriteFile",
    "worker_toolbox",
]

MAX_OUTPUT_CHARS = 30_000
MIN_FLOOD_BYTES = 1024 * 1024
MAX_GREP_RESULTS = 200
MAX_GREP_SECONDS = 30.0
MAX_LIST_RESULTS = 1_000
_KILLED = "the command and every process it started were killed"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call produced: the text the model sees and the files it touched."""

    content: str
    is_error: bool = False
    files_read: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Where and for whom a tool runs.

    `emit(data)` appends an event to the calling agent's own stream (with its
    meta, caused by the tool call): a tool must use it, never `store.append`
    on that stream, or the agent sees a version conflict. `extra` carries what
    non-worker tools need (e.g. the fleet an orchestrator's tools act on).
    """

    workspace: Workspace
    agent_id: str
    run_id: str | None = None
    parent_id: str | None = None
    emit: Callable[[EventModel], Awaitable[RecordedEvent]] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Tool(Protocol):
    """A tool an agent can call (class attributes satisfy the three properties)."""

    @property
    def name(self) -> str:
        """The name the model calls it by."""
        ...

    @property
    def description(self) -> str:
        """What it does, for the model."""
        ...

    @property
    def input_model(self) -> type[BaseModel]:
        """The pydantic model of its input; its JSON schema is the tool's `input_schema`."""
        ...

    async def __call__(self, input: Any, ctx: ToolContext) -> ToolResult:
        """Run with a validated `input`; raise `ToolError` to report a failure to the model."""
        ...


@functools.cache
def _schema_of(model: type[BaseModel]) -> str:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return json.dumps(schema)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The input_schema of a tool (built once per input model; a fresh copy each call)."""
    return json.loads(_schema_of(model))  # type: ignore[no-any-return]


def _validation_detail(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class Toolbox:
    """The tools one agent may call, by name, with their Messages API definitions."""

    __slots__ = ("_definitions", "_tools")

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self._tools[tool.name] = tool
        self._definitions = [
            {"name": t.name, "description": t.description, "input_schema": _schema(t.input_model)}
            for t in self._tools.values()
        ]

    @property
    def names(self) -> list[str]:
        """The tool names, in the order given."""
        return list(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        """The `tools` parameter of a Messages API request (a fresh list; safe to mutate)."""
        return [dict(d) for d in self._definitions]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool:
        """The tool `name`. Raises `ToolError` naming the tools there are."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self._tools)}")
        return tool

    def validate(self, name: str, raw: Mapping[str, Any]) -> BaseModel:
        """`raw` checked against the tool's input model. Raises `ToolError` / `ToolInputInvalid`."""
        tool = self.get(name)
        try:
            return tool.input_model.model_validate(raw)
        except ValidationError as e:
            raise ToolInputInvalid(name, _validation_detail(e)) from None

    async def call(self, name: str, raw: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        """Validate `raw` and run the tool; a `ToolError` becomes an error result."""
        try:
            tool = self.get(name)
            return await tool(self.validate(name, raw), ctx)
        except ToolError as e:
            return ToolResult(str(e), is_error=True)


# -- the worker tools ---------------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadFileInput(_Input):
    path: str = Field(min_length=1, description="File path, relative to the workspace.")
    offset: int = Field(default=1, ge=1, description="First line to return (1-based).")
    limit: int | None = Field(default=None, ge=1, description="Number of lines to return.")


class WriteFileInput(_Input):
    path: str = Field(min_length=1, description="File path, relative to the workspace.")
    content: str = Field(description="The whole new content of the file.")


class EditFileInput(_Input):
    path: str = Field(min_length=1, description="File path, relative to the workspace.")
    old_string: str = Field(min_length=1, description="Exact text to replace.")
    new_string: str = Field(description="Text to put in its place.")
    replace_all: bool = Field(default=False, description="Replace every occurrence.")


class ListFilesInput(_Input):
    pattern: str = Field(default="**/*", min_length=1, description="Glob, e.g. '**/*.py'.")
    path: str = Field(default=".", description="Folder to list, relative to the workspace.")


class GrepInput(_Input):
    pattern: str = Field(min_length=1, description="Regular expression (Python syntax).")
    path: str = Field(default=".", description="File or folder to search.")
    glob: str | None = Field(default=None, description="Only files matching this glob.")
    ignore_case: bool = False
    max_results: int = Field(default=MAX_GREP_RESULTS, ge=1, le=2_000)


class RunCommandInput(_Input):
    command: str = Field(min_length=1, description="Shell command, run in the workspace.")
    timeout_s: float = Field(
        default=120.0, gt=0, le=600, description="Seconds before it is killed."
    )


def _glob_match(rel: str, pattern: str) -> bool:
    if pattern.startswith("**/"):
        return fnmatch.fnmatchcase(rel, pattern[3:]) or fnmatch.fnmatchcase(rel, pattern)
    if "/" not in pattern:
        return fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(rel, pattern)


class ReadFile:
    """read_file: the text of a file in the workspace."""

    name: ClassVar[str] = "read_file"
    description: ClassVar[str] = (
        "Read a text file of the workspace. Optional `offset` (1-based line) and `limit` (lines)."
    )
    input_model: ClassVar[type[BaseModel]] = ReadFileInput

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()

    async def __call__(self, input: ReadFileInput, ctx: ToolContext) -> ToolResult:
        rel, text, next_line = await asyncio.to_thread(
            self.sandbox.read, ctx.workspace, input.path, offset=input.offset, limit=input.limit
        )
        if next_line is not None:
            text += (
                f"\n[... truncated: over {MAX_READ_BYTES} bytes; read on with offset={next_line}]"
            )
        return ToolResult(text, files_read=(rel,))


class WriteFile:
    """write_file: create or overwrite a file in the workspace."""

    name: ClassVar[str] = "write_file"
    description: ClassVar[str] = (
        "Create or overwrite a file of the workspace with `content` (folders are created)."
    )
    input_model: ClassVar[type[BaseModel]] = WriteFileInput

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()

    async def __call__(self, input: WriteFileInput, ctx: ToolContext) -> ToolResult:
        data = input.content.encode("utf-8")
        rel, size = await asyncio.to_thread(self.sandbox.write, ctx.workspace, input.path, data)
        return ToolResult(f"wrote {size} bytes to {rel}", files_written=(rel,))


def _replacer(input: EditFileInput, counted: list[int]) -> Callable[[str, str], str]:
    def change(text: str, rel: str) -> str:
        count = text.count(input.old_string)
        if count == 0:
            raise ToolError(f"old_string not found in {rel}")
        if count > 1 and not input.replace_all:
            raise ToolError(
                f"old_string occurs {count} times in {rel}: give more surrounding text to "
                "make it unique, or set replace_all"
            )
        counted.append(count)
        return text.replace(input.old_string, input.new_string)

    return change


class EditFile:
    """edit_file: replace an exact text in a file (once, or everywhere with replace_all)."""

    name: ClassVar[str] = "edit_file"
    description: ClassVar[str] = (
        "Replace `old_string` with `new_string` in a file. `old_string` must occur exactly "
        "once unless `replace_all` is true."
    )
    input_model: ClassVar[type[BaseModel]] = EditFileInput

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()

    async def __call__(self, input: EditFileInput, ctx: ToolContext) -> ToolResult:
        if input.old_string == input.new_string:
            raise ToolError("old_string and new_string are the same: nothing to change")
        counted: list[int] = []
        rel = await asyncio.to_thread(
            self.sandbox.edit, ctx.workspace, input.path, _replacer(input, counted)
        )
        what = "1 occurrence" if counted[0] == 1 else f"{counted[0]} occurrences"
        return ToolResult(f"replaced {what} in {rel}", files_read=(rel,), files_written=(rel,))


def _list(box: Sandbox, ws: Workspace, path: str, pattern: str) -> list[str]:
    located = ws.locate(path)
    os.close(located.dir_fd)
    start = "" if located.rel == "." else located.rel + "/"
    found = []
    entries = box.walk(ws, path)
    try:
        for entry in entries:
            if entry.rel == located.rel:
                raise ToolError(f"no such folder: {located.rel}")  # a file, not a folder
            if _glob_match(entry.rel[len(start) :], pattern):
                found.append(entry.rel)
    finally:
        entries.close()
    return found


class ListFiles:
    """list_files: the files of the workspace matching a glob."""

    name: ClassVar[str] = "list_files"
    description: ClassVar[str] = (
        "List files matching a glob (default '**/*') under a folder of the workspace. "
        "Hidden files and folders are skipped."
    )
    input_model: ClassVar[type[BaseModel]] = ListFilesInput

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()

    async def __call__(self, input: ListFilesInput, ctx: ToolContext) -> ToolResult:
        found = await asyncio.to_thread(
            _list, self.sandbox, ctx.workspace, input.path, input.pattern
        )
        if not found:
            return ToolResult("no files match")
        shown = found[:MAX_LIST_RESULTS]
        text = "\n".join(shown)
        if len(found) > len(shown):
            text += f"\n[... {len(found) - len(shown)} more files not shown]"
        return ToolResult(text)


class Grep:
    """grep: lines matching a regular expression, as `path:line:text`."""

    name: ClassVar[str] = "grep"
    description: ClassVar[str] = (
        "Search files of the workspace for a regular expression. Prints `path:line:text` for "
        "each matching line (capped). Hidden files and folders are skipped."
    )
    input_model: ClassVar[type[BaseModel]] = GrepInput

    def __init__(self, sandbox: Sandbox | None = None, *, max_seconds: float = MAX_GREP_SECONDS):
        self.sandbox = sandbox or Sandbox()
        self.max_seconds = max_seconds

    async def __call__(self, input: GrepInput, ctx: ToolContext) -> ToolResult:
        try:
            regex = compile_search(input.pattern, ignore_case=input.ignore_case)
        except ValueError as e:
            raise ToolInputInvalid(self.name, f"pattern: {e}") from None
        only = None if input.glob is None else functools.partial(_glob_filter, input.glob)
        stop = threading.Event()
        try:
            found = await asyncio.to_thread(
                search,
                ctx.workspace,
                self.sandbox,
                input.path,
                regex,
                max_results=input.max_results,
                deadline=time.monotonic() + self.max_seconds,
                stop=stop,
                only=only,
            )
        finally:
            stop.set()  # a cancelled call stops its search thread (see _search.py note 3)
        text = "\n".join(found.lines) if found.lines else "no matches"
        if found.total > len(found.lines):
            text += f"\n[... {found.total - len(found.lines)} more matching lines not shown]"
        if found.stopped == "deadline":
            text += f"\n[... search stopped after {self.max_seconds:g}s: narrow the path or glob]"
            return ToolResult(text, is_error=True, files_read=tuple(found.files))
        return ToolResult(text, files_read=tuple(found.files))


def _glob_filter(pattern: str, rel: str) -> bool:
    return _glob_match(rel, pattern)


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


WORKER_TOOLS: tuple[str, ...] = (
    "read_file",
    "write_file",
    "edit_file",
    "list_files",
    "grep",
    "run_command",
)
"""Names of the worker tools, in the order `worker_toolbox()` gives them."""


def worker_toolbox(
    names: Iterable[str] | None = None,
    *,
    max_output_chars: int = MAX_OUTPUT_CHARS,
    log_path: str | os.PathLike[str] | None = None,
) -> Toolbox:
    """A toolbox of the worker tools (all, or those in `names`). `ValueError` for another name.

    `log_path` is the event log's file when it is one: the file tools refuse to
    write it, its -wal, -shm and -journal (see `_sandbox.py`), wherever it is.
    The file tools of one toolbox share one `Sandbox`.
    """
    box = Sandbox(log_path=log_path)
    tools: dict[str, Tool] = {
        "read_file": ReadFile(box),
        "write_file": WriteFile(box),
        "edit_file": EditFile(box),
        "list_files": ListFiles(box),
        "grep": Grep(box),
        "run_command": RunCommand(max_output_chars=max_output_chars),
    }
    wanted = list(WORKER_TOOLS if names is None else names)
    unknown = [n for n in wanted if n not in tools]
    if unknown:
        raise ValueError(f"unknown worker tools {unknown}; known: {list(WORKER_TOOLS)}")
    return Toolbox(tools[n] for n in wanted)
