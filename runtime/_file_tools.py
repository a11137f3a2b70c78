"""The file tools, named and shaped as Claude Code's: Read, Write, Edit, Glob, Grep.

    Read  {file_path, offset, limit}                          kind "read"
    Write {file_path, content}                                kind "write"
    Edit  {file_path, old_string, new_string, replace_all}    kind "write"
    Glob  {pattern, path}                                     kind "read"
    Grep  {pattern, path, glob, type, output_mode, -i, -n, -A, -B, -C, head_limit, multiline}

Each returns the text the model sees and, for PostToolUse hooks, Claude Code's
output object of the tool (`ToolResult.response`): Read
`{"type": "text", "file": {"filePath", "content", "numLines", "startLine"}}`,
Write `{"type": "create"|"update", "filePath", "content"}`, Edit `{"filePath",
"oldString", "newString", "replaceAll", "userModified"}`, Glob `{"filenames",
"numFiles", "truncated", "durationMs"}`, Grep `{"mode", "numFiles",
"filenames", "content", "numLines", "numMatches"}` (paths absolute, as Claude
Code gives them).

Notes (do not fix without reading this):
1. The tools do their work in `Sandbox` (`_sandbox.py`) and Grep in
   `_search.py` (RE2, linear time, streamed, stopped at `MAX_GREP_SECONDS` or
   on cancellation), all in a thread; those modules know no tool names. Glob
   and Grep skip hidden files and folders (`.git`, `.fleet`, ...),
   `__pycache__` and `node_modules` while walking, as ripgrep does; a hidden
   path named explicitly is searched.
2. A path may be relative to the workspace or absolute inside it (Claude Code
   gives absolute paths; fleet's agents may give either).
3. The text the model sees keeps fleet's own forms (Read: the file's text, no
   line numbers; Grep content: `path:line:text`), so runs recorded before the
   tools took Claude Code's names replay with the same results through the
   old names (`aliases`). Grep's context lines (-A, -B, -C) are read back
   from the file after the search, as ripgrep prints them: `path-line-text`,
   groups separated by `--`. `multiline` is refused: the search is per line.
4. The context lines are read in one pass a file, under the search's own
   deadline and stop: read back hit by hit, each from the top of its file,
   they took hits times the file's size, past the deadline and after a
   cancel (400 hits in a 2 MB file: 5.4 s against a 0.5 s deadline).
5. A glob's `*`, `?` and `[...]` match within one name, never across a `/`;
   `**` as a whole name matches any number of folders, none too (as
   ripgrep's and Claude Code's globs do): `src/*.py` is not `src/a/b.py`
   and `src/**/*.py` is `src/app.py` too. Matched with fnmatch across the
   whole path, `*` crossed folders and `**/` needed one. A pattern with no
   `/` matches a file's name at any depth. Matched name by name, in time
   linear in the pattern's names times the path's, whatever the `**`s.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import operator
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._sandbox import MAX_READ_BYTES, Sandbox
from ._search import MAX_LINE_CHARS, SearchResult, compile_search, search
from ._tools import ToolContext, ToolKind, ToolResult
from ._workspace import MAX_DEPTH, Workspace
from .errors import ToolError, ToolInputInvalid, shown_path

__all__ = [
    "FILE_TYPES",
    "MAX_GREP_RESULTS",
    "MAX_GREP_SECONDS",
    "Edit",
    "Glob",
    "Grep",
    "Read",
    "Write",
]

MAX_GREP_RESULTS = 200
MAX_GREP_SECONDS = 30.0
MAX_READ_SECONDS = 30.0
MAX_GLOB_SECONDS = 30.0
MAX_LIST_RESULTS = 1_000
MAX_LIST_CHARS = MAX_READ_BYTES  # a list is no longer than the most text one Read gives

FILE_TYPES: Mapping[str, tuple[str, ...]] = {
    "c": ("*.c", "*.h"),
    "cpp": ("*.cpp", "*.cc", "*.cxx", "*.hpp", "*.hh", "*.h"),
    "css": ("*.css",),
    "go": ("*.go",),
    "html": ("*.html", "*.htm"),
    "java": ("*.java",),
    "js": ("*.js", "*.jsx", "*.mjs", "*.cjs"),
    "json": ("*.json",),
    "md": ("*.md", "*.markdown"),
    "py": ("*.py", "*.pyi"),
    "rust": ("*.rs",),
    "sh": ("*.sh", "*.bash"),
    "toml": ("*.toml",),
    "ts": ("*.ts", "*.tsx", "*.mts", "*.cts"),
    "txt": ("*.txt",),
    "yaml": ("*.yaml", "*.yml"),
}
"""Grep's `type` names (ripgrep's) and the files each one means."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("*")
    @classmethod
    def _utf8(cls, value: Any) -> Any:
        # A lone surrogate (JSON's "\\ud800") has no UTF-8: a Write of it, or a path holding
        # it, failed with UnicodeEncodeError. Constrained fields are refused by pydantic.
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("not valid Unicode (it holds a lone UTF-16 surrogate)") from None
        return value


def _whole_number(value: Any) -> Any:
    """A float with no fraction as the int it is (JSON has one kind of number: 2.0 is 2).

    The integer fields are strict besides, as Bash's `timeout` is: `"2"` was taken for 2
    and `true` for 1. So are the booleans: `"yes"`, `"on"` and `1` were taken for true."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_PATH = "Path of the file: absolute (inside the workspace) or relative to the workspace."


class ReadInput(_Input):
    file_path: str = Field(min_length=1, description=_PATH)
    offset: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description="The line number to start reading from (1-based).",
    )
    limit: int | None = Field(
        default=None, ge=1, strict=True, description="The number of lines to read."
    )

    _numbers = field_validator("offset", "limit", mode="before")(_whole_number)


class WriteInput(_Input):
    file_path: str = Field(min_length=1, description=_PATH)
    content: str = Field(description="The content to write to the file.")


class EditInput(_Input):
    file_path: str = Field(min_length=1, description=_PATH)
    old_string: str = Field(min_length=1, description="The text to replace.")
    new_string: str = Field(description="The text to replace it with (must be different).")
    replace_all: bool = Field(
        default=False, strict=True, description="Replace all occurrences of old_string."
    )


class GlobInput(_Input):
    pattern: str = Field(min_length=1, description="The glob pattern to match files against.")
    path: str | None = Field(
        default=None, description="The folder to search in (default: the workspace)."
    )


class GrepInput(_Input):
    pattern: str = Field(min_length=1, description="The regular expression to search for.")
    path: str | None = Field(
        default=None, description="File or folder to search in (default: the workspace)."
    )
    glob: str | None = Field(default=None, description='Glob to filter files, e.g. "*.py".')
    type: str | None = Field(default=None, description='File type to search, e.g. "py", "js".')
    output_mode: Literal["content", "files_with_matches", "count"] = Field(
        default="files_with_matches",
        description='"content" shows matching lines, "files_with_matches" file paths, '
        '"count" match counts.',
    )
    case_insensitive: bool = Field(
        default=False, strict=True, alias="-i", description="Case insensitive."
    )
    line_numbers: bool = Field(
        default=True, strict=True, alias="-n", description='Show line numbers ("content" mode).'
    )
    after: int | None = Field(
        default=None, ge=0, le=100, strict=True, alias="-A", description="Lines after."
    )
    before: int | None = Field(
        default=None, ge=0, le=100, strict=True, alias="-B", description="Lines before."
    )
    context: int | None = Field(
        default=None, ge=0, le=100, strict=True, alias="-C", description="Lines before and after."
    )
    head_limit: int | None = Field(
        default=None,
        ge=1,
        le=2_000,
        strict=True,
        description="Show only the first N lines or entries.",
    )
    multiline: bool = Field(
        default=False, strict=True, description="Not supported: the search is per line."
    )

    _numbers = field_validator("after", "before", "context", "head_limit", mode="before")(
        _whole_number
    )


def _glob_match(rel: str, pattern: str) -> bool:
    """True if the path `rel` matches the glob `pattern` (module note 5)."""
    if "/" not in pattern:
        return fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern)
    names = rel.split("/")
    # reach[j]: the pattern's names so far match the first j names of `rel`.
    reach = [True] + [False] * len(names)
    parts = pattern.split("/")
    absolute = [""] if pattern.startswith("/") else []  # "" matches no name: nothing
    for part in absolute + [p for p in parts if p not in ("", ".")]:
        if part == "**":  # any number of folders, none too
            reach = list(itertools.accumulate(reach, operator.or_))
        else:
            reach = [False] + [
                ok and fnmatch.fnmatchcase(name, part)
                for ok, name in zip(reach[:-1], names, strict=True)
            ]
        if not any(reach):
            return False
    return reach[-1]


def _listed(paths: list[str], limit: int, what: str = "files") -> tuple[list[str], str]:
    """The first `limit` of `paths` (or of any lines) that fit in `MAX_LIST_CHARS` (a line
    each), and the note saying how many more `what` were left out ("" if none).

    Paths can be 128 names of 255 characters deep: 1,000 of them were 32 MB of text;
    Grep's lines with 100 lines of context each, 200 hits, were 20 MB."""
    shown: list[str] = []
    size = 0
    for rel in paths[:limit]:
        size += len(rel) + 1
        if size > MAX_LIST_CHARS:
            break
        shown.append(rel)
    more = len(paths) - len(shown)
    if not more:
        return shown, ""
    if len(shown) < min(limit, len(paths)):
        return shown, f"\n[... {more} more {what} not shown (over {MAX_LIST_CHARS} characters)]"
    return shown, f"\n[... {more} more {what} not shown]"


def _absolute(ws: Workspace, rel: str) -> str:
    return str(ws.root) if rel == "." else f"{ws.root}/{rel}"


# -- legacy names (module note 3) ---------------------------------------------------------


def _rename(raw: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """`raw` with its old names (`names`: old -> new) renamed. Raises `ValueError` when a
    field is given under both names: one silently won (`_tools.py` note 3)."""
    for old, new in names.items():
        if old in raw and new in raw:
            raise ValueError(f"{old} and {new} are both given ({new} is the new name of {old})")
    return {names.get(k, k): v for k, v in raw.items()}


def _renamed(**names: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def translate(raw: Mapping[str, Any]) -> dict[str, Any]:
        return _rename(raw, names)

    return translate


def _from_list_files(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {"pattern": "**/*", **raw}


def _from_grep(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"output_mode": "content", "-n": True}
    out.update(_rename(raw, {"ignore_case": "-i", "max_results": "head_limit"}))
    out.setdefault("head_limit", MAX_GREP_RESULTS)
    return out


# -- the tools ------------------------------------------------------------------------------


class Read:
    """Read: the text of a file in the workspace."""

    name: ClassVar[str] = "Read"
    kind: ClassVar[ToolKind] = "read"
    description: ClassVar[str] = (
        "Reads a file of the workspace. By default it reads the whole file; give `offset` "
        "(first line, 1-based) and `limit` (lines) for a part of a long one."
    )
    input_model: ClassVar[type[BaseModel]] = ReadInput
    aliases: ClassVar[Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
        "read_file": _renamed(path="file_path")
    }

    def __init__(self, sandbox: Sandbox | None = None, *, max_seconds: float = MAX_READ_SECONDS):
        self.sandbox = sandbox or Sandbox()
        self.max_seconds = max_seconds

    async def __call__(self, input: ReadInput, ctx: ToolContext) -> ToolResult:
        start = max(input.offset or 1, 1)
        stop = threading.Event()
        stopping = _stopping(stop, time.monotonic() + self.max_seconds, self.max_seconds)
        try:
            rel, text, next_line = await asyncio.to_thread(
                self.sandbox.read,
                ctx.workspace,
                input.file_path,
                offset=start,
                limit=input.limit,
                stopping=stopping,
            )
            if not text and start > 1:  # past the end: say so, not an empty answer
                total = await asyncio.to_thread(
                    _count_lines, self.sandbox, ctx.workspace, rel, stopping
                )
        finally:
            stop.set()  # a cancelled call stops its thread
        lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
        file: dict[str, Any] = {
            "filePath": _absolute(ctx.workspace, rel),
            "content": text,
            "numLines": lines,
            "startLine": start,
        }
        if next_line is None and (input.limit is None or lines < input.limit):
            file["totalLines"] = start - 1 + lines
        if not text and start > 1:
            file["totalLines"] = total
            text = f"[{rel} has {total} lines: offset {start} is past its end]"
        if next_line == start:  # one line over the cap: offset=start would give it again
            text += (
                f"\n[... truncated: line {start} alone is over {MAX_READ_BYTES} bytes; Read "
                "cannot show the rest of it: use Bash (e.g. cut -c or head -c)]"
            )
        elif next_line is not None:
            text += (
                f"\n[... truncated: over {MAX_READ_BYTES} bytes; read on with offset={next_line}]"
            )
        return ToolResult(text, files_read=(rel,), response={"type": "text", "file": file})


def _stopping(stop: threading.Event, deadline: float, seconds: float) -> Callable[[], str | None]:
    """Why a read in a thread should stop now (its call cancelled, its time up), or None."""

    def why() -> str | None:
        if stop.is_set():
            return "the call was cancelled"
        if time.monotonic() > deadline:
            return f"over {seconds:g}s (the file is too large to skip that far)"
        return None

    return why


def _count_lines(box: Sandbox, ws: Workspace, path: str, stopping: Callable[[], str | None]) -> int:
    """The number of lines of the file `path` (a last one without a newline counts)."""
    fd, rel = box.open_file(ws, path)
    count, last = 0, b"\n"
    with open(fd, "rb") as f:
        while chunk := f.read(1024 * 1024):
            if why := stopping():
                raise ToolError(f"stopped counting the lines of {shown_path(rel)}: {why}")
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _exists(box: Sandbox, ws: Workspace, path: str) -> bool:
    try:
        fd, _ = box.open_file(ws, path)
    except ToolError:
        return False
    os.close(fd)
    return True


def _write(box: Sandbox, ws: Workspace, path: str, data: bytes) -> tuple[str, int, bool]:
    existed = _exists(box, ws, path)  # for the response's "type" only; the write decides
    rel, size = box.write(ws, path, data)
    return rel, size, existed


class Write:
    """Write: create or overwrite a file in the workspace."""

    name: ClassVar[str] = "Write"
    kind: ClassVar[ToolKind] = "write"
    description: ClassVar[str] = (
        "Writes a file of the workspace, replacing it if it exists (folders are created)."
    )
    input_model: ClassVar[type[BaseModel]] = WriteInput
    aliases: ClassVar[Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
        "write_file": _renamed(path="file_path")
    }

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()

    def written(self, input: WriteInput, before: bytes | None) -> bytes | None:
        """What the file holds after this call (`_interrupted.py`)."""
        return input.content.encode("utf-8")

    async def __call__(self, input: WriteInput, ctx: ToolContext) -> ToolResult:
        data = input.content.encode("utf-8")
        rel, size, existed = await asyncio.to_thread(
            _write, self.sandbox, ctx.workspace, input.file_path, data
        )
        response = {
            "type": "update" if existed else "create",
            "filePath": _absolute(ctx.workspace, rel),
            "content": input.content,
        }
        return ToolResult(f"wrote {size} bytes to {rel}", files_written=(rel,), response=response)


def _replacer(input: EditInput, counted: list[int]) -> Callable[[str, str], str]:
    def change(text: str, rel: str) -> str:
        count = text.count(input.old_string)
        if count == 0:
            raise ToolError(f"old_string not found in {shown_path(rel)}")
        if count > 1 and not input.replace_all:
            raise ToolError(
                f"old_string occurs {count} times in {shown_path(rel)}: give more surrounding "
                "text to make it unique, or set replace_all"
            )
        counted.append(count)
        return text.replace(input.old_string, input.new_string)

    return change


class Edit:
    """Edit: replace an exact text in a file (once, or everywhere with replace_all)."""

    name: ClassVar[str] = "Edit"
    kind: ClassVar[ToolKind] = "write"
    description: ClassVar[str] = (
        "Replaces `old_string` with `new_string` in a file. The edit fails if `old_string` "
        "is not found, or is found more than once without `replace_all`."
    )
    input_model: ClassVar[type[BaseModel]] = EditInput
    aliases: ClassVar[Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
        "edit_file": _renamed(path="file_path")
    }

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox or Sandbox()

    def written(self, input: EditInput, before: bytes | None) -> bytes | None:
        """What the file holds after this call, given `before`; None if it would fail."""
        if before is None or input.old_string == input.new_string:
            return None
        text = before.decode("utf-8", errors="surrogateescape")  # as the sandbox edits
        try:
            return _replacer(input, [])(text, "").encode("utf-8", errors="surrogateescape")
        except ToolError:
            return None

    async def __call__(self, input: EditInput, ctx: ToolContext) -> ToolResult:
        if input.old_string == input.new_string:
            raise ToolError("old_string and new_string are the same: nothing to change")
        counted: list[int] = []
        rel = await asyncio.to_thread(
            self.sandbox.edit, ctx.workspace, input.file_path, _replacer(input, counted)
        )
        what = "1 occurrence" if counted[0] == 1 else f"{counted[0]} occurrences"
        response = {
            "filePath": _absolute(ctx.workspace, rel),
            "oldString": input.old_string,
            "newString": input.new_string,
            "replaceAll": input.replace_all,
            "userModified": False,
        }
        return ToolResult(
            f"replaced {what} in {rel}", files_read=(rel,), files_written=(rel,), response=response
        )


def _list(
    box: Sandbox,
    ws: Workspace,
    path: str,
    pattern: str,
    stopping: Callable[[], str | None],
    too_deep: list[str],
) -> tuple[list[str], str | None]:
    """The files under `path` matching `pattern`, and why the walk stopped early, if it did.

    The folders too deep to walk are added to `too_deep`."""
    located = ws.locate(path)
    os.close(located.dir_fd)
    start = "" if located.rel == "." else located.rel + "/"
    found: list[str] = []
    entries = box.walk(ws, path, too_deep=too_deep)
    try:
        for walked, entry in enumerate(entries):
            if walked % 256 == 0 and (why := stopping()) is not None:
                return found, why
            if entry.rel == located.rel:
                raise ToolError(
                    f"{shown_path(located.rel)} is a file, not a folder: give its folder"
                )
            if _glob_match(entry.rel[len(start) :], pattern):
                found.append(entry.rel)
    finally:
        entries.close()
    return found, None


class Glob:
    """Glob: the files of the workspace matching a glob pattern."""

    name: ClassVar[str] = "Glob"
    kind: ClassVar[ToolKind] = "read"
    description: ClassVar[str] = (
        'Finds files by glob pattern ("**/*.py", "src/**/*.ts") under a folder of the '
        "workspace. Hidden files and folders are skipped."
    )
    input_model: ClassVar[type[BaseModel]] = GlobInput
    aliases: ClassVar[Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
        "list_files": _from_list_files
    }

    def __init__(self, sandbox: Sandbox | None = None, *, max_seconds: float = MAX_GLOB_SECONDS):
        self.sandbox = sandbox or Sandbox()
        self.max_seconds = max_seconds

    async def __call__(self, input: GlobInput, ctx: ToolContext) -> ToolResult:
        started = time.perf_counter()
        stop = threading.Event()

        def stopping() -> str | None:
            if stop.is_set():
                return "cancelled"
            return "deadline" if time.perf_counter() - started >= self.max_seconds else None

        too_deep: list[str] = []
        try:
            found, why = await asyncio.to_thread(
                _list,
                self.sandbox,
                ctx.workspace,
                input.path or ".",
                input.pattern,
                stopping,
                too_deep,
            )
        finally:
            stop.set()  # a cancelled call stops its walk
        shown, note = _listed(found, MAX_LIST_RESULTS)
        response = {
            "filenames": [_absolute(ctx.workspace, rel) for rel in shown],
            "numFiles": len(found),
            "truncated": len(found) > len(shown),
            "durationMs": round((time.perf_counter() - started) * 1000),
        }
        text = ("\n".join(shown) if found else "no files match") + note
        text += _too_deep_note(too_deep)
        if why is not None:  # the deadline (a cancelled call returns nothing)
            text += f"\n[... walk stopped after {self.max_seconds:g}s: narrow the path or pattern]"
            return ToolResult(text, is_error=True, response=response)
        return ToolResult(text, response=response)


def _too_deep_note(folders: list[str]) -> str:
    """What the model is told of the folders a walk did not enter (`_sandbox.py` note 5)."""
    if not folders:
        return ""
    first = shown_path(folders[0])
    what = "1 folder" if len(folders) == 1 else f"{len(folders)} folders"
    return f"\n[... {what} more than {MAX_DEPTH} deep not walked: {first}]"


def _file_filter(input: GrepInput) -> Callable[[str], bool] | None:
    globs: list[str] = []
    if input.type is not None:
        if input.type not in FILE_TYPES:
            known = ", ".join(sorted(FILE_TYPES))
            raise ToolInputInvalid(
                "Grep", f"type: unknown file type {input.type!r}; known: {known}"
            )
        globs = list(FILE_TYPES[input.type])
    only_glob = input.glob

    def wanted(rel: str) -> bool:
        if only_glob is not None and not _glob_match(rel, only_glob):
            return False
        return not globs or any(_glob_match(rel, g) for g in globs)

    return wanted if (globs or only_glob is not None) else None


def _with_context(
    box: Sandbox,
    ws: Workspace,
    found: SearchResult,
    before: int,
    after: int,
    stopping: Callable[[], str | None],
) -> list[str]:
    """The matching lines with their context, as ripgrep prints them (module note 3).

    Each file is read once, up to its last line shown. `stopping()` is asked as
    it reads: when it names a reason (the deadline, a cancel) the lines so far
    are returned and `found.stopped` says why (note 4).
    """
    out: list[str] = []
    matched = {(rel, n) for rel, n, _ in found.hits}
    for rel, numbers in _numbers_by_file(found.hits):
        spans: list[list[int]] = []  # [first, last] line shown, merged where they touch
        for n in numbers:
            first, last = max(1, n - before), n + after
            if spans and first <= spans[-1][1] + 1:
                spans[-1][1] = max(spans[-1][1], last)
            else:
                spans.append([first, last])
        lines, why = _lines_in(box, ws, rel, spans, stopping)
        for first, last in spans:
            shown = [i for i in range(first, last + 1) if i in lines]
            if shown and out:
                out.append("--")
            for i in shown:
                sep = ":" if (rel, i) in matched else "-"
                # Cut as a match's line is without context: a minified file's lines are
                # hundreds of KiB each, and -C 2 gave the model megabytes.
                out.append(f"{rel}{sep}{i}{sep}{lines[i][:MAX_LINE_CHARS]}")
        if why is not None:
            found.stopped = why
            break
    return out


def _numbers_by_file(hits: list[tuple[str, int, str]]) -> list[tuple[str, list[int]]]:
    """The hits' line numbers, file by file, in the order found."""
    by_file: dict[str, list[int]] = {}
    for rel, number, _ in hits:
        by_file.setdefault(rel, []).append(number)
    return list(by_file.items())


def _lines_in(
    box: Sandbox,
    ws: Workspace,
    rel: str,
    spans: list[list[int]],
    stopping: Callable[[], str | None],
) -> tuple[dict[int, str], str | None]:
    """The lines of `rel` inside `spans` (sorted, apart), by number, read in one pass (at
    most `MAX_READ_BYTES` of each line kept); and why it stopped early, if it did."""
    lines: dict[int, str] = {}
    fd, _ = box.open_file(ws, rel)
    with open(fd, "rb") as f:
        number, span, kept = 1, 0, bytearray()
        chunks = 0
        while span < len(spans):
            chunks += 1
            if chunks % 256 == 0 and (why := stopping()) is not None:
                return lines, why
            chunk = f.readline(65536)
            if not chunk:
                break
            first, last = spans[span]
            if number >= first and len(kept) < MAX_READ_BYTES:
                kept += chunk[: MAX_READ_BYTES - len(kept)]
            if not chunk.endswith(b"\n"):
                continue  # the same line goes on
            if number >= first:
                text = kept.decode("utf-8", errors="replace").removesuffix("\n")
                lines[number] = text.removesuffix("\r")
                kept.clear()
            if number == last:
                span += 1
            number += 1
        if kept and span < len(spans) and number >= spans[span][0]:  # a last line, no newline
            lines[number] = kept.decode("utf-8", errors="replace")
    return lines, None


class Grep:
    """Grep: search the files of the workspace for a regular expression."""

    name: ClassVar[str] = "Grep"
    kind: ClassVar[ToolKind] = "read"
    description: ClassVar[str] = (
        "Searches the contents of the workspace's files for a regular expression (Python "
        'syntax). output_mode "files_with_matches" (default) lists the files, "content" the '
        'matching lines as path:line:text, "count" the matches per file. Filter files with '
        "`glob` or `type`. Hidden files and folders are skipped."
    )
    input_model: ClassVar[type[BaseModel]] = GrepInput
    aliases: ClassVar[Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
        "grep": _from_grep
    }

    def __init__(self, sandbox: Sandbox | None = None, *, max_seconds: float = MAX_GREP_SECONDS):
        self.sandbox = sandbox or Sandbox()
        self.max_seconds = max_seconds

    async def __call__(self, input: GrepInput, ctx: ToolContext) -> ToolResult:
        if input.multiline:
            raise ToolInputInvalid(self.name, "multiline: not supported (the search is per line)")
        try:
            # In a thread: a pattern of 700 KB took Python's `re` 2.5 s, the loop stopped.
            regex = await asyncio.to_thread(
                compile_search, input.pattern, ignore_case=input.case_insensitive
            )
        except ValueError as e:
            raise ToolInputInvalid(self.name, f"pattern: {e}") from None
        # Files and counts are capped as Glob's list is: 30,000 matching files gave 3.8 MB.
        limit = input.head_limit or (
            MAX_GREP_RESULTS if input.output_mode == "content" else MAX_LIST_RESULTS
        )
        stop = threading.Event()
        try:
            found, lines = await asyncio.to_thread(
                self._search, ctx.workspace, input, regex, limit, stop
            )
        finally:
            stop.set()  # a cancelled call stops its search thread (see _search.py note 3)
        text, response = _grep_output(ctx.workspace, input, found, lines, limit)
        if found.stopped == "deadline":
            text += f"\n[... search stopped after {self.max_seconds:g}s: narrow the path or glob]"
            return ToolResult(text, is_error=True, files_read=tuple(found.files), response=response)
        return ToolResult(text, files_read=tuple(found.files), response=response)

    def _search(
        self, ws: Workspace, input: GrepInput, regex: Any, max_results: int, stop: threading.Event
    ) -> tuple[SearchResult, list[str]]:
        """The search, and for "content" the lines to show. Blocking: runs in a thread."""
        deadline = time.monotonic() + self.max_seconds
        found = search(
            ws,
            self.sandbox,
            input.path or ".",
            regex,
            max_results=max_results,
            deadline=deadline,
            stop=stop,
            only=_file_filter(input),
        )
        if input.output_mode != "content":
            return found, []
        before = input.before if input.before is not None else (input.context or 0)
        after = input.after if input.after is not None else (input.context or 0)
        if before or after:

            def stopping() -> str | None:
                if stop.is_set():
                    return "cancelled"
                return "deadline" if time.monotonic() > deadline else None

            return found, _with_context(self.sandbox, ws, found, before, after, stopping)
        if input.line_numbers:
            return found, list(found.lines)
        return found, [f"{rel}:{text}" for rel, _, text in found.hits]


def _grep_output(
    ws: Workspace, input: GrepInput, found: SearchResult, lines: list[str], limit: int
) -> tuple[str, dict[str, Any]]:
    response: dict[str, Any] = {"mode": input.output_mode, "numFiles": len(found.files)}
    if input.output_mode in ("files_with_matches", "count"):  # capped as Glob's list is
        every = (
            found.files
            if input.output_mode == "files_with_matches"
            else [f"{rel}:{found.counts[rel]}" for rel in found.files]
        )
        entries, note = _listed(every, limit)
        response["filenames"] = [_absolute(ws, rel) for rel in found.files[: len(entries)]]
        if input.output_mode == "count":
            response |= {"content": "\n".join(entries), "numMatches": found.total}
        text = ("\n".join(entries) if entries else "no matches") + note
        return text + _too_deep_note(found.too_deep), response
    response["filenames"] = [_absolute(ws, rel) for rel in found.files[:limit]]
    lines, cut = _listed(lines, len(lines), "lines")
    text = ("\n".join(lines) if lines else "no matches") + cut
    if found.total > len(found.hits):
        text += f"\n[... {found.total - len(found.hits)} more matching lines not shown]"
    response |= {"content": "\n".join(lines), "numLines": len(lines)}
    return text + _too_deep_note(found.too_deep), response
