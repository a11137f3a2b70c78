"""Searching files for a regular expression in linear time, as a stream, under a deadline.

    regex = compile_search("def \\w+", ignore_case=False)      # ValueError saying why not
    found = search(ws, box, ".", regex, max_results=200, deadline=time.monotonic() + 30, stop=event)

Notes (do not fix without reading this):
1. The engine is RE2 (`google-re2`): its time is linear in the text searched,
   whatever the pattern, so `(a+)+$` cannot run away as it does with Python's
   `re`. Its syntax is Python's but for backreferences and look-around; `\\Z`
   is taken as `\\z`. A pattern RE2 refuses and Python's `re` accepts runs in
   Python's `re` instead, in a worker process (`_regex_worker.py`) that is
   killed at the deadline or on `stop` (note 3): such a pattern may backtrack,
   but never past the call.
2. A file is read in 1 MiB blocks cut at a line end, never whole, and each
   block is searched at once with `(?m)` and RE2's `never_nl` (no match spans
   two lines), so `^` and `$` match at each line's start and end; the lines
   holding a match are then cut out. A pattern using `\\A`, `\\z` or turning
   multi-line mode off is searched line by line instead. A line longer than
   1 MiB is searched in 1 MiB pieces.
3. The search runs in a thread; it stops at `deadline` or as soon as `stop` is
   set (the tool sets it when its call is cancelled): RE2 between blocks (a
   block takes milliseconds), the worker process at once (it is killed), so a
   cancelled agent leaves no search burning CPU.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2  # type: ignore[import-untyped]

from ._regex_worker import read_frame, write_frame
from ._sandbox import BINARY_SNIFF, Sandbox
from ._workspace import Workspace
from .errors import ToolError

__all__ = ["SearchResult", "compile_search", "search"]

BLOCK_BYTES = 1024 * 1024
MAX_LINE_CHARS = 500
WORKER_PATH = Path(__file__).with_name("_regex_worker.py")
_POLL_S = 0.05

Lines = list[tuple[int, bytes]]
"""(offset in the block, line) of each matching line of a block."""


@dataclass(frozen=True, slots=True)
class Regex:
    """A compiled search: RE2's block form (note 2), or a pattern for Python's `re` (note 1)."""

    block: Any
    by_line: bool
    python: str | None = None
    ignore_case: bool = False


@dataclass(slots=True)
class SearchResult:
    """Matching lines as `path:line:text` (at most `max_results`), the files and the total.

    `hits` holds the same lines as (path, line number, text); `counts` the
    number of matching lines of each file (all of them, not only those kept).
    """

    lines: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    total: int = 0
    hits: list[tuple[str, int, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None  # why the search ended early ("deadline", "cancelled")
    too_deep: list[str] = field(default_factory=list)  # folders not walked (`Sandbox.walk`)


def _rewrite(pattern: str) -> tuple[str, bool]:
    """`pattern` with `\\Z` as `\\z`, and whether it needs searching line by line (note 2)."""
    out: list[str] = []
    by_line = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = "z" if pattern[i + 1] == "Z" else pattern[i + 1]
            by_line = by_line or escaped in "Az"
            out.append("\\" + escaped)
            i += 2
            continue
        if pattern.startswith("(?", i):
            flags = ""
            j = i + 2
            while j < len(pattern) and (pattern[j].isalpha() or pattern[j] == "-"):
                flags += pattern[j]
                j += 1
            by_line = by_line or ("-" in flags and "m" in flags.split("-", 1)[1])
        out.append(char)
        i += 1
    return "".join(out), by_line


def _options(ignore_case: bool) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    options.never_nl = True
    options.case_sensitive = not ignore_case
    return options


def compile_search(pattern: str, *, ignore_case: bool) -> Regex:
    """Compile `pattern` for `search` (note 1). Raises `ValueError` saying what is wrong."""
    text, by_line = _rewrite(pattern)
    options = _options(ignore_case)
    try:
        re2.compile(text, options)
        return Regex(re2.compile(text if by_line else "(?m)" + text, options), by_line)
    except re2.error:
        pass  # perhaps Python's syntax only (look-around, backreferences): try it there
    try:
        re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as e:
        raise ValueError(f"not a valid regular expression: {e}") from None
    return Regex(None, True, python=pattern, ignore_case=ignore_case)


class _Worker:
    """Python's `re` in a process of its own (note 1), killed when the search ends or halts."""

    def __init__(self, regex: Regex) -> None:
        assert regex.python is not None
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER_PATH)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        flag = b"i" if regex.ignore_case else b"-"
        write_frame(self.stdin, flag + regex.python.encode("utf-8"))

    def lines(self, block: bytes, halt: Callable[[], bool]) -> Lines | None:
        """The matching lines of `block`, or None if `halt()` said to stop first."""
        write_frame(self.stdin, block)  # the worker reads whole frames before searching
        while not select.select([self.stdout], [], [], _POLL_S)[0]:
            if halt():
                return None
        frame = read_frame(self.stdout)
        if frame is None:
            raise ToolError("the regular expression search failed: its worker process died")
        wanted = {int(i) for i in frame.split(b",") if i}
        found: Lines = []
        start = 0
        for i, line in enumerate(block.split(b"\n")):
            if i in wanted:
                found.append((start, line))
            start += len(line) + 1
        return found

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.stdin.close()
        self.stdout.close()


def _blocks(fd: int) -> Iterator[bytes]:
    """The file as blocks cut after a line end (note 2); nothing for a binary file."""
    pending = b""
    first = True
    while True:
        chunk = os.read(fd, BLOCK_BYTES)
        if first:
            if b"\x00" in chunk[:BINARY_SNIFF]:
                return
            first = False
        if not chunk:
            if pending:
                yield pending
            return
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) < BLOCK_BYTES:
            pending = data
            continue
        if cut == 0:
            cut = len(data)
        pending = data[cut:]
        yield data[:cut]


def _matching_lines(regex: Regex, block: bytes) -> Lines:
    """The lines of `block` that match, found by RE2."""
    found: Lines = []
    if regex.by_line:
        start = 0
        for line in block.splitlines(keepends=True):
            if regex.block.search(line.rstrip(b"\n")):
                found.append((start, line))
            start += len(line)
        return found
    pos = 0
    end_of_lines = len(block) - block.endswith(b"\n")
    while pos < len(block):
        match = regex.block.search(block, pos)
        if match is None or match.start() > end_of_lines:
            break
        start = block.rfind(b"\n", 0, match.start()) + 1
        end = block.find(b"\n", match.start())
        end = len(block) if end == -1 else end
        found.append((start, block[start:end]))
        pos = end + 1
    return found


def _search_file(
    fd: int,
    rel: str,
    lines_of: Callable[[bytes], Lines | None],
    found: SearchResult,
    max_results: int,
    halt: Callable[[], bool],
) -> bool:
    """Search one open file into `found`. False if it stopped early."""
    line_number = 1
    matched = False
    for block in _blocks(fd):
        lines = None if halt() else lines_of(block)
        if lines is None:
            return False
        counted = 0
        for start, line in lines:
            line_number += block.count(b"\n", counted, start)
            counted = start
            found.total += 1
            found.counts[rel] = found.counts.get(rel, 0) + 1
            matched = True
            if len(found.lines) < max_results:
                text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")[:MAX_LINE_CHARS]
                found.lines.append(f"{rel}:{line_number}:{text}")
                found.hits.append((rel, line_number, text))
        line_number += block.count(b"\n", counted)
    if matched:
        found.files.append(rel)
    return True


def search(
    ws: Workspace,
    box: Sandbox,
    path: str,
    regex: Regex,
    *,
    max_results: int,
    deadline: float,
    stop: threading.Event,
    only: Callable[[str], bool] | None = None,
) -> SearchResult:
    """Search the files under `path` (as `Sandbox.walk` meets them) for `regex`.

    `only(rel)` picks the files to search. Stops at `deadline` (a
    `time.monotonic()` value) or when `stop` is set, saying so in `stopped`.
    Blocking: call it in a thread. Raises `ToolError` for a missing `path`.
    """
    found = SearchResult()

    def halt() -> bool:
        if stop.is_set():
            found.stopped = "cancelled"
        elif time.monotonic() >= deadline:
            found.stopped = "deadline"
        return found.stopped is not None

    worker = _Worker(regex) if regex.python is not None else None

    def lines_of(block: bytes) -> Lines | None:
        if worker is not None:
            return worker.lines(block, halt)
        return _matching_lines(regex, block)

    entries = box.walk(ws, path, too_deep=found.too_deep)
    try:
        for entry in entries:
            if halt():
                break
            if only is not None and not only(entry.rel):
                continue
            fd = box.open_entry(ws, entry)
            if fd is None:
                continue
            try:
                finished = _search_file(fd, entry.rel, lines_of, found, max_results, halt)
            except OSError:
                finished = True  # unreadable (e.g. removed meanwhile): skipped, as before
            finally:
                os.close(fd)
            if not finished:
                break
    finally:
        entries.close()
        if worker is not None:
            worker.close()
    return found
