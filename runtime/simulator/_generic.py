"""The simulator's generic policy: what a role without a script does.

A role without a script (any system prompt without a `Role:` line a policy is
registered for) gets the generic policy. What it does depends on the tools
the request offers:

- Claude Code's tools (`Read` with `Edit` or `Bash`; the Claude Agent SDK
  offers the same): it carries out the task in the simulator's grammar
  (`rename `a` to `b``, `replace "x" with "y"`, see `_roles.py`) as a coding
  agent would. It has a subagent (`Agent`, or `Task` in older Claude Code
  versions) find every line to change, reads the files, edits each line with
  `Edit`, runs the tests with `Bash` (`python -m unittest`) after a change,
  writes a summary with `Write` when the prompt asks for one ("write a
  summary to CHANGES.md"), and answers with what it did. The subagent it
  starts searches with `Grep` when offered, else `grep` through `Bash`, and
  reports `- path:line: text` lines. A task without a directive gets a look
  around (`Glob` or `ls`) and the README's first line.
  Fleet's own agents have the same tools (fleet's worker tools took Claude
  Code's names), so an agent of a role without a script that may edit or run
  commands works the same way.
- only tools that read (`Glob`, `Read`: a read-only role): it looks at the
  workspace and answers without changing anything.
- no tools it knows: it says what it received.

Notes (do not fix without reading this):
1. Paths: Claude Code's file tools want absolute paths. The working
   directory is read from the system prompt or a system message ("Primary
   working directory: /path", Claude Code's environment block); without one,
   paths stay relative.
2. The subagent is told to "search only, change nothing": that phrase is how
   the policy, replayed for the subagent's own requests, knows it is the
   searcher and not the editor. It runs in the foreground
   (`run_in_background: false`) so that its report is the tool result.
3. Every edit replaces one whole line (its indentation included) with
   `replace_all: true`, so a line repeated in a file is changed everywhere
   and `Edit` never fails on "more than one match".
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Generator, Sequence

from ._policies import Call, Observation, Situation, Turn
from ._roles import (
    PYTEST_COMMAND,
    Directive,
    Location,
    find_directives,
    or_pytest,
    tests_verdict,
)

__all__ = ["SEARCH_ONLY", "coding_policy", "generic_policy"]

SEARCH_ONLY = "Search only, change nothing"
"""The phrase that makes a (sub)agent report what to change instead of changing it (note 2)."""

_CWD = re.compile(r"^\s*-?\s*(?:Primary working directory|Working directory|cwd):\s*(\S+)", re.M)
_LISTED = re.compile(r"^\s*- ([^:\n]+):(\d+): (.*)$", re.MULTILINE)
_GREPPED = re.compile(r"^([^:\n]+):(\d+):(.*)$", re.MULTILINE)
# Claude Code's Read numbers lines as `cat -n` does (`   12\tline`) or with an arrow (`12→line`).
_NUMBERED = re.compile(r"^\s*\d+(?:\t|→)(.*)$")
_WRITE_TO = re.compile(
    r"\b(?:write|save|put)\b[^.\n]*?\b(?:to|into|in)\s+`?((?:[\w.-]+/)*[\w.-]+\.md)\b`?",
    re.IGNORECASE,
)
_MAX_FILES = 12
_SKIPPED_DIRS = (".git", ".claude", ".fleet", ".venv", "node_modules", "__pycache__")


def generic_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Any role without a script: a coding agent with Claude Code's tools, else a look around."""
    if "Read" in situation.tools and ({"Edit", "Bash"} & situation.tools):
        return (yield from coding_policy(situation))
    prompt = situation.prompt.strip() or situation.task.strip()
    first_line = prompt.splitlines()[0] if prompt else "(no prompt)"
    if "Glob" not in situation.tools:
        return f"(offline simulator, role {situation.role}) Received: {first_line}"
    seen = yield Turn("Let me look at the workspace first.", [Call("Glob", {"pattern": "**/*"})])
    files = (
        []
        if seen[0].is_error or seen[0].content == "no files match"
        else seen[0].content.splitlines()
    )
    readme = next((f for f in files if f.lower() in ("readme.md", "readme.txt", "readme")), None)
    summary = ""
    if readme and "Read" in situation.tools:
        read = yield Turn(f"Reading {readme}.", [Call("Read", {"file_path": readme, "limit": 20})])
        if not read[0].is_error:
            heading = next((ln for ln in read[0].content.splitlines() if ln.strip()), "")
            summary = f" {readme} begins: {heading.strip()!r}."
    return (
        f"(offline simulator, role {situation.role}) Task: {first_line}\n"
        f"The workspace has {len(files)} files.{summary} "
        "This role has no scripted behaviour, so no change was made."
    )


# -- a coding agent with Claude Code's tools --------------------------------------------------


def coding_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Carry out a rename/replace task with Claude Code's tools (see the module docstring)."""
    directives = find_directives(situation)
    cwd = _working_directory(situation.system)
    if not directives:
        return (yield from _look_around(situation, cwd))
    if SEARCH_ONLY.lower() in situation.prompt.lower():
        locations = yield from _search(situation, directives, cwd)
        return _report(directives, locations)
    delegated = yield from _delegate_search(situation, directives)
    if delegated is None:
        locations = yield from _search(situation, directives, cwd)
    else:
        locations = delegated
    files = sorted({loc.path for loc in locations})[:_MAX_FILES]
    if not files:
        olds = ", ".join(f"`{d.old}`" for d in directives)
        return f"(offline simulator) Nothing to change: no line holds {olds}."
    read = yield Turn(
        f"{len(locations)} lines in {len(files)} files to change; reading them first.",
        [Call("Read", {"file_path": _absolute(f, cwd)}) for f in files],
    )
    readable = {f for f, r in zip(files, read, strict=False) if not r.is_error}
    edits = _edits(locations, directives, readable, cwd)
    applied = 0
    if edits:
        results = yield Turn(f"Applying {len(edits)} edits.", edits)
        applied = sum(1 for r in results if not r.is_error)
    changed = sorted({loc.path for loc in locations if loc.path in readable})
    tests = yield from _run_tests(situation, changed)
    summary = (
        f"(offline simulator) {'; '.join(d.describe() for d in directives)}: "
        f"{applied} of {len(edits)} edits applied in {len(changed)} files "
        f"({', '.join(changed) or 'none'}).{tests}"
    )
    written = yield from _write_summary(situation, summary, changed, cwd)
    return summary + written


def _working_directory(system: str) -> str | None:
    match = _CWD.search(system)
    return match.group(1).rstrip("/") if match else None


def _absolute(path: str, cwd: str | None) -> str:
    return path if cwd is None or path.startswith("/") else f"{cwd}/{path}"


def _relative(path: str, cwd: str | None) -> str:
    path = path.strip()
    if cwd and path.startswith(cwd + "/"):
        return path[len(cwd) + 1 :]
    return path.removeprefix("./")


def _look_around(situation: Situation, cwd: str | None) -> Generator[Turn, list[Observation], str]:
    prompt = (situation.prompt.strip() or situation.task.strip()).splitlines()
    first_line = prompt[0] if prompt else "(no prompt)"
    if "Glob" in situation.tools:
        call = Call("Glob", {"pattern": "**/*"})
    elif "Bash" in situation.tools:
        call = Call("Bash", {"command": "ls -A", "description": "List the workspace"})
    else:
        return f"(offline simulator) Received: {first_line}"
    seen = yield Turn("Let me look at the workspace first.", [call])
    names = [] if seen[0].is_error else [_relative(n, cwd) for n in seen[0].content.splitlines()]
    names = [n for n in names if n]
    readme = next((n for n in names if n.lower() in ("readme.md", "readme.txt", "readme")), None)
    summary = ""
    if readme is not None:
        read = yield Turn(
            f"Reading {readme}.", [Call("Read", {"file_path": _absolute(readme, cwd), "limit": 20})]
        )
        if not read[0].is_error:
            lines = [_unnumbered(ln) for ln in read[0].content.splitlines()]
            heading = next((ln.strip() for ln in lines if ln.strip()), "")
            summary = f" {readme} begins: {heading!r}."
    return (
        f"(offline simulator) Task: {first_line}\n"
        f"The workspace has {len(names)} entries.{summary} The task names no change I can make "
        '(I know `rename `a` to `b`` and `replace "x" with "y"`), so nothing was changed.'
    )


def _unnumbered(line: str) -> str:
    match = _NUMBERED.match(line)
    return match.group(1) if match else line


def _search_call(situation: Situation, d: Directive) -> Call:
    if "Grep" in situation.tools:
        pattern = rf"\b{re.escape(d.old)}\b" if d.kind == "rename" else re.escape(d.old)
        grep: dict[str, object] = {"pattern": pattern, "output_mode": "content", "-n": True}
        if d.code_only:
            grep["glob"] = "*.py"
        return Call("Grep", grep)
    flags = "-rnw --include='*.py'" if d.code_only else "-rnF"
    # Named folders, not '.*': GNU grep would skip the starting folder "." itself.
    skip = " ".join(f"--exclude-dir={name}" for name in _SKIPPED_DIRS)
    command = f"grep {flags} {skip} -e {shlex.quote(d.old)} . || true"
    return Call("Bash", {"command": command, "description": f"Find {d.old}"})


def _search(
    situation: Situation, directives: Sequence[Directive], cwd: str | None
) -> Generator[Turn, list[Observation], list[Location]]:
    if not ({"Grep", "Bash"} & situation.tools):
        return []
    calls = [_search_call(situation, d) for d in directives]
    what = ", ".join(f"`{d.old}`" for d in directives)
    results = yield Turn(f"Searching for {what}.", calls)
    found: dict[tuple[str, int], Location] = {}
    for result in results:
        if result.is_error:
            continue
        for m in _GREPPED.finditer(result.content):
            loc = Location(_relative(m.group(1), cwd), int(m.group(2)), m.group(3))
            found.setdefault((loc.path, loc.line), loc)
    return sorted(found.values(), key=lambda loc: (loc.path, loc.line))


def _report(directives: Sequence[Directive], locations: Sequence[Location]) -> str:
    files = sorted({loc.path for loc in locations})
    lines = [f"Lines to change for {'; '.join(d.describe() for d in directives)}:"]
    lines += [loc.listed() for loc in locations] or ["(none found)"]
    lines.append(f"{len(locations)} lines in {len(files)} files.")
    return "\n".join(lines)


def _delegate_search(
    situation: Situation, directives: Sequence[Directive]
) -> Generator[Turn, list[Observation], list[Location] | None]:
    tool = "Agent" if "Agent" in situation.tools else "Task" if "Task" in situation.tools else None
    if tool is None:
        return None
    kind = "Explore" if re.search(r"^- Explore:", situation.system, re.M) else "general-purpose"
    task = "; ".join(d.describe() for d in directives)
    prompt = (
        f"{SEARCH_ONLY}. Find every line that must change for this task: {task}. "
        "Report each line as `- path:line: text`, paths relative to the working directory."
    )
    result = yield Turn(
        "I'll have a subagent find every line to change.",
        [
            Call(
                tool,
                {
                    "description": "Find the lines to change",
                    "prompt": prompt,
                    "subagent_type": kind,
                    "run_in_background": False,
                },
            )
        ],
    )
    if result[0].is_error:
        return None
    found = {
        (m.group(1).strip(), int(m.group(2))): m.group(3)
        for m in _LISTED.finditer(result[0].content)
    }
    return [Location(path, line, text) for (path, line), text in sorted(found.items())]


def _edits(
    locations: Sequence[Location],
    directives: Sequence[Directive],
    readable: set[str],
    cwd: str | None,
) -> list[Call]:
    calls: list[Call] = []
    seen: set[tuple[str, str]] = set()
    for loc in locations:
        new = loc.text
        for d in directives:
            new = d.apply(new)
        if loc.path not in readable or new == loc.text or (loc.path, loc.text) in seen:
            continue
        seen.add((loc.path, loc.text))
        calls.append(
            Call(
                "Edit",
                {
                    "file_path": _absolute(loc.path, cwd),
                    "old_string": loc.text,
                    "new_string": new,
                    "replace_all": True,
                },
            )
        )
    return calls


def _run_tests(
    situation: Situation, changed: Sequence[str]
) -> Generator[Turn, list[Observation], str]:
    if "Bash" not in situation.tools or not changed:
        return ""
    ran = yield Turn(
        "Running the tests.",
        [
            Call(
                "Bash",
                {"command": "python -m unittest -q 2>&1 | tail -3", "description": "Run the tests"},
            )
        ],
    )
    last = yield from or_pytest(ran[0], f"{PYTEST_COMMAND} 2>&1 | tail -3")
    tail = [ln.strip() for ln in last.content.splitlines() if ln.strip()]
    failed = last.is_error or any("FAILED" in ln for ln in tail)
    verdict = tests_verdict(last.content, not failed)
    return f" Tests {verdict} ({tail[-1] if tail else 'no output'})."


def _write_summary(
    situation: Situation, summary: str, changed: Sequence[str], cwd: str | None
) -> Generator[Turn, list[Observation], str]:
    match = _WRITE_TO.search(situation.prompt)
    if match is None or "Write" not in situation.tools:
        return ""
    path = match.group(1)
    text = "# Changes\n\n" + summary + "\n\n" + "".join(f"- {f}\n" for f in changed)
    written = yield Turn(
        f"Writing the summary to {path}.",
        [Call("Write", {"file_path": _absolute(path, cwd), "content": text})],
    )
    if written[0].is_error:
        return f" I could not write {path}: {written[0].content}"
    return f" Summary written to {path}."
