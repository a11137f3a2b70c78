"""The worker tools together: their names and the toolbox of an agent that works in a workspace."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ._bash_tool import MAX_OUTPUT_CHARS, RunCommand
from ._file_tools import EditFile, Grep, ListFiles, ReadFile, WriteFile
from ._sandbox import Sandbox
from ._tools import Tool, Toolbox

__all__ = ["WORKER_TOOLS", "worker_toolbox"]


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
