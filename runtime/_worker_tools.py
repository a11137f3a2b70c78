"""The worker tools together: Claude Code's names, and the toolbox of an agent in a workspace.

    Read, Write, Edit, Glob, Grep (`_file_tools.py`) and Bash (`_bash_tool.py`).

`LEGACY_TOOL_NAMES` maps the names fleet's tools had before they took Claude
Code's (read_file, write_file, edit_file, list_files, grep, run_command) to
the tools that answer them now: a toolbox takes either, so a run recorded with
the old names replays and a resumed agent of such a run keeps its tools.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from ._bash_tool import MAX_OUTPUT_CHARS, Bash
from ._file_tools import Edit, Glob, Grep, Read, Write
from ._sandbox import Sandbox
from ._tools import Tool, Toolbox

__all__ = ["LEGACY_TOOL_NAMES", "WORKER_TOOLS", "worker_tool_name", "worker_toolbox"]


WORKER_TOOLS: tuple[str, ...] = ("Read", "Write", "Edit", "Glob", "Grep", "Bash")
"""Names of the worker tools, in the order `worker_toolbox()` gives them."""

LEGACY_TOOL_NAMES: Mapping[str, str] = {
    "read_file": "Read",
    "write_file": "Write",
    "edit_file": "Edit",
    "list_files": "Glob",
    "grep": "Grep",
    "run_command": "Bash",
}
"""The worker tools' former names and the tool that answers each now."""


def worker_tool_name(name: str) -> str:
    """The worker tool `name` means today (a former name is translated; others kept)."""
    return LEGACY_TOOL_NAMES.get(name, name)


def worker_toolbox(
    names: Iterable[str] | None = None,
    *,
    max_output_chars: int = MAX_OUTPUT_CHARS,
    log_path: str | os.PathLike[str] | None = None,
) -> Toolbox:
    """A toolbox of the worker tools (all, or those in `names`). `ValueError` for another name.

    `names` may use the tools' former names (`LEGACY_TOOL_NAMES`).

    `log_path` is the event log's file when it is one: the file tools refuse to
    write it, its -wal, -shm and -journal (see `_sandbox.py`), wherever it is.
    The file tools of one toolbox share one `Sandbox`.
    """
    box = Sandbox(log_path=log_path)
    tools: dict[str, Tool] = {
        "Read": Read(box),
        "Write": Write(box),
        "Edit": Edit(box),
        "Glob": Glob(box),
        "Grep": Grep(box),
        "Bash": Bash(max_output_chars=max_output_chars),
    }
    source = WORKER_TOOLS if names is None else list(names)
    wanted = list(dict.fromkeys(worker_tool_name(n) for n in source))
    unknown = [n for n in wanted if n not in tools]
    if unknown:
        raise ValueError(f"unknown worker tools {unknown}; known: {list(WORKER_TOOLS)}")
    return Toolbox(tools[n] for n in wanted)
