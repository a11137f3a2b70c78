"""The file tools: read_file, write_file, edit_file, list_files, grep.

They do their work in `Sandbox` (`_sandbox.py`) and `grep` in `_search.py`, in
a thread; see `_tools.py` for the `Tool` protocol they follow.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import os
import threading
import time
from collections.abc import Callable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ._sandbox import MAX_READ_BYTES, Sandbox
from ._search import compile_search, search
from ._tools import ToolContext, ToolResult
from ._workspace import Workspace
from .errors import ToolError, ToolInputInvalid

__all__ = ["EditFile", "Grep", "ListFiles", "ReadFile", "WriteFile"]

MAX_GREP_RESULTS = 200
MAX_GREP_SECONDS = 30.0
MAX_LIST_RESULTS = 1_000


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
