"""The simulator's scripted roles: scout, planner, builder, reviewer, shipper.

Each role does real work on a real repository through the real tools. What to
change comes from the task, in this grammar (case-insensitive, anywhere in the
task; several directives may be given):

    rename `old_name` to `new_name`      identifiers: whole-word matches, in code files
    replace "Old text" with "New text"   literal text, in every file

Where to write and what to read come from the rest of the prompt: the output is
the `.md` path after "write ... to" (e.g. "Write your findings to
notes/relevant-files-2.md"), and the inputs are the other `.md` paths the prompt
names outside its `Task:` paragraph (e.g. "Carry out the plan in plan.md").

- scout: greps for each directive's old name or text (identifiers in `*.py`
  files only; keywords of the task when it has no directive), reads the
  matching files, writes its findings (default `relevant-files.md`) as
  `- path:line: text` lines.
- planner: reads the findings named in its prompt (or greps itself when there
  are none), reads the files, writes a plan (default `plan.md`) whose
  ```json fleet-edits``` block lists the edits as {file, old, new, replace_all}.
- builder: reads the plan (or a scout's findings), applies each edit with
  Edit, runs `python -m unittest` with Bash. Given review feedback ("CHANGES
  REQUESTED" with `- path:line: text` lines), it fixes exactly those lines.
- reviewer: `git diff`, a grep of the whole repository for what should be gone
  (the notes it was given excepted), the tests; answers `APPROVED: ...` or
  `CHANGES REQUESTED: ...` with the list of what is left.
- shipper: `git status`, then `git add -A && git commit`; says plainly when the
  workspace is not a git repository or has nothing to commit.

Notes (do not fix without reading this):
1. The scout searches code files only for a rename, as a scout hunting an
   identifier would. On the sample repository that leaves the README's
   mentions for the reviewer to find, so plan-build-review-ship's review fails
   once and the second build, driven by the review's list, fixes the docs.
   That is the realistic "review fails once"; do not make the scout thorough.
2. A command cut short by a stop is not run again on resume: its result says
   so (`runtime/_interrupted.py`) and asks the model to check. The roles' own
   commands are checks (tests, `git diff`, `git status`), run again, and the
   shipper's commit, looked for in `git log` before it is made again. Taken
   for failures, a run killed while its tests ran failed on `fleet resume`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .._run_damage import NO_PYTEST, found_no_test
from ._policies import Call, Observation, Policy, Situation, Turn

__all__ = [
    "PYTEST_COMMAND",
    "ROLE_POLICIES",
    "TEST_COMMAND",
    "Directive",
    "Location",
    "builder_policy",
    "find_directives",
    "or_pytest",
    "parse_plan_edits",
    "planner_policy",
    "reviewer_policy",
    "scout_policy",
    "shipper_policy",
    "tests_verdict",
]

TEST_COMMAND = "python -m unittest"
# Run next when unittest found no test, as a developer would guess: a pytest project.
PYTEST_COMMAND = "python -m pytest -q"


def tests_verdict(output: str, ok: bool) -> str:
    """How a test command went, as the agent tells it: "pass", "FAIL" or "none found" (unittest
    in a pytest repository says "Ran 0 tests ... OK" and exits 0: "pass" would be a lie)."""
    if found_no_test(output):
        return "none found"
    return "pass" if ok else "FAIL"


"""The command the simulated builder and reviewer run to test the repository."""

# A name in backticks, or a bare identifier (dotted names too; a trailing "." ends the sentence).
_NAME = r"(?:`([^`\n]+)`|([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*))"
_RENAME = re.compile(
    r"\brename\s+(?:the\s+)?(?:(?:function|method|class|variable|constant|attribute)\s+)?"
    r"(?!(?:it|this|that|them|these|those|all|everything)\b)"
    rf"{_NAME}\s+to\s+{_NAME}",
    re.IGNORECASE,
)
_REPLACE = re.compile(r'replace\s+"([^"\n]+)"\s+with\s+"([^"\n]*)"', re.IGNORECASE)
_TASK = re.compile(r"^Task:[ \t]*(.*?)(?:\n[ \t]*\n|\Z)", re.MULTILINE | re.DOTALL)
_WRITE_TO = re.compile(
    r"\b(?:write|save|put)\b[^.\n]*?\b(?:to|into|in)\s+`?((?:[\w.-]+/)*[\w.-]+\.md)\b`?",
    re.IGNORECASE,
)
_MD_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.md)\b")
# Claude Code's Read numbers each line (`12\tline`, or `12→line` in older releases).
_NUMBERED = re.compile(r"^\s*\d+(?:\t|→)")
_UNREAD = "has not been read yet"
_LISTED = re.compile(r"^\s*- ([^:\n]+):(\d+): (.*)$", re.MULTILINE)
_GREPPED = re.compile(r"^([^:\n]+):(\d+):(.*)$", re.MULTILINE)
_EDITS = re.compile(r"```json fleet-edits\n(.*?)\n```", re.DOTALL)
# A word list reads better as one string than as a column of literals.
_STOPWORDS = frozenset(
    "about after again all also and any are because been before being below between both "  # noqa: SIM905
    "but can could does doing down during each few find files from further have having "
    "here into its just more most other over same should some such than that the their "
    "them then there these they this those through under until very what when where "
    "which while with would your task write change changes exact lines line touches "
    "orchestrator report back findings notes".split()
)


@dataclass(frozen=True, slots=True)
class Directive:
    """One change the task asks for."""

    kind: Literal["rename", "replace"]
    old: str
    new: str

    @property
    def pattern(self) -> str:
        """The grep pattern that finds what should change."""
        if self.kind == "rename":
            # `\b` where it means a whole word: RE2, ripgrep (Claude Code's Grep) and grep
            # all read it; look-around is Python's and PCRE's only.
            if re.fullmatch(r"\w(.*\w)?", self.old, re.DOTALL):
                return rf"\b{re.escape(self.old)}\b"
            return rf"(?<!\w){re.escape(self.old)}(?!\w)"
        return re.escape(self.old)

    @property
    def code_only(self) -> bool:
        return self.kind == "rename"

    def apply(self, text: str) -> str:
        """`text` with this change made."""
        if self.kind == "rename":
            return re.sub(self.pattern, lambda _: self.new, text)
        return text.replace(self.old, self.new)

    def describe(self) -> str:
        if self.kind == "rename":
            return f"rename `{self.old}` to `{self.new}`"
        return f'replace "{self.old}" with "{self.new}"'


@dataclass(frozen=True, slots=True)
class Location:
    """One line of one file."""

    path: str
    line: int
    text: str

    def listed(self) -> str:
        return f"- {self.path}:{self.line}: {self.text}"


# -- reading prompts ----------------------------------------------------------------------


def _split(prompt: str) -> tuple[str, str]:
    """(the task paragraph, the rest); without a `Task:` paragraph, (prompt, prompt)."""
    match = _TASK.search(prompt)
    if match is None:
        return prompt.strip(), prompt
    return match.group(1).strip(), prompt[: match.start()] + prompt[match.end() :]


def _directives_in(text: str) -> list[Directive]:
    found = [
        (m.start(), Directive("rename", m.group(1) or m.group(2), m.group(3) or m.group(4)))
        for m in _RENAME.finditer(text)
    ]
    found += [
        (m.start(), Directive("replace", m.group(1), m.group(2))) for m in _REPLACE.finditer(text)
    ]
    return [d for _, d in sorted(found, key=lambda item: item[0])]


def find_directives(situation: Situation) -> list[Directive]:
    """The changes asked for: in the prompt's task paragraph, else anywhere in prompt or task."""
    task, _ = _split(situation.prompt)
    for text in (task, situation.prompt, _split(situation.task)[0], situation.task):
        found = _directives_in(text)
        if found:
            return found
    return []


def _task_line(situation: Situation) -> str:
    task, _ = _split(situation.prompt or situation.task)
    return task.splitlines()[0].strip() if task.strip() else "(no task)"


def _output_path(situation: Situation) -> str | None:
    _, rest = _split(situation.prompt)
    match = _WRITE_TO.search(rest)
    return match.group(1) if match else None


def _input_paths(situation: Situation, output: str | None) -> list[str]:
    _, rest = _split(situation.prompt)
    seen: list[str] = []
    for match in _MD_PATH.finditer(rest):
        path = match.group(1)
        if path != output and path not in seen:
            seen.append(path)
    return seen


def _keywords(task: str) -> list[str]:
    ticked = re.findall(r"`([^`\n]+)`", task)
    words = [
        w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]{4,}", task) if w.lower() not in _STOPWORDS
    ]
    out: list[str] = []
    for word in [*ticked, *words]:
        if word not in out:
            out.append(word)
    return out[:3]


def _unnumbered(text: str) -> str:
    """A file as read, without the line numbers Claude Code's Read puts before each line."""
    lines = text.splitlines()
    if lines and all(_NUMBERED.match(line) for line in lines if line.strip()):
        return "\n".join(_NUMBERED.sub("", line) for line in lines)
    return text


def _locations(text: str, pattern: re.Pattern[str]) -> list[Location]:
    return [
        Location(m.group(1).strip(), int(m.group(2)), m.group(3))
        for m in pattern.finditer(_unnumbered(text))
    ]


def _ok(observation: Observation) -> bool:
    return not observation.is_error


_CUT_SHORT = "interrupted: the process running this "
"""How the runtime answers a call a stop cut short and it did not run again (note 2)."""


def _cut_short(observation: Observation) -> bool:
    return observation.is_error and observation.content.startswith(_CUT_SHORT)


def _again(
    calls: list[Call], results: list[Observation]
) -> Generator[Turn, list[Observation], list[Observation]]:
    """`results`, with the calls a stop cut short run again (checks only: note 2)."""
    redo = [i for i, r in enumerate(results) if _cut_short(r)]
    results = list(results)
    if redo:
        again = yield Turn("A stop cut these short; running them again.", [calls[i] for i in redo])
        for i, result in zip(redo, again, strict=False):
            results[i] = result
    return results


def or_pytest(
    ran: Observation, command: str = PYTEST_COMMAND
) -> Generator[Turn, list[Observation], Observation]:
    """`ran`, a run of `TEST_COMMAND`; or, when it found no test (a pytest project: unittest
    says "Ran 0 tests ... OK"), the run of `command` (pytest's) that follows it. Where
    pytest is not installed (a project of another language, say), unittest's answer stands."""
    if not found_no_test(ran.content):
        return ran
    again = yield Turn(
        "unittest found no tests; running them with pytest.",
        [_bash(command, "Run the tests with pytest")],
    )
    return ran if NO_PYTEST in again[0].content else again[0]


def _body(observation: Observation) -> str:
    """A Bash result without its `exit code ...` first line."""
    _, _, rest = observation.content.partition("\n")
    return rest


def _missing(situation: Situation, needed: Iterable[str]) -> str | None:
    absent = [name for name in needed if name not in situation.tools]
    if absent:
        return (
            f"I cannot work as a {situation.role}: the tools {', '.join(absent)} are not available."
        )
    return None


def _unique(locations: Iterable[Location]) -> list[Location]:
    seen: dict[tuple[str, int], Location] = {}
    for loc in locations:
        seen.setdefault((loc.path, loc.line), loc)
    return sorted(seen.values(), key=lambda loc: (loc.path, loc.line))


def _files(locations: Iterable[Location]) -> list[str]:
    return sorted({loc.path for loc in locations})


def _grep(pattern: str, **options: object) -> Call:
    """A Grep call that lists the matching lines as `path:line:text`."""
    return Call("Grep", {"pattern": pattern, "output_mode": "content", "-n": True, **options})


def _read(path: str) -> Call:
    return Call("Read", {"file_path": path})


def _bash(command: str, description: str) -> Call:
    return Call("Bash", {"command": command, "description": description})


def _searches(directives: list[Directive], task: str) -> list[Call]:
    if directives:
        return [
            _grep(d.pattern, glob="*.py") if d.code_only else _grep(d.pattern) for d in directives
        ]
    return [_grep(re.escape(k), **{"-i": True}) for k in _keywords(task)]


# -- scout ---------------------------------------------------------------------------------


def scout_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Search for what the task names, read the matching files, write the findings."""
    if problem := _missing(situation, ("Grep", "Write")):
        return problem
    directives = find_directives(situation)
    out = _output_path(situation) or "relevant-files.md"
    task_line = _task_line(situation)
    searches = _searches(directives, _split(situation.prompt)[0])
    locations: list[Location] = []
    if searches:
        what = ", ".join(f"`{c.input['pattern']}`" for c in searches)
        where = (
            " in the Python files" if directives and all(d.code_only for d in directives) else ""
        )
        results = yield Turn(f"I'll search the repository{where} for {what}.", searches)
        locations = _unique(
            loc for r in results if _ok(r) for loc in _locations(r.content, _GREPPED)
        )
    files = _files(locations)[:8]
    if files and "Read" in situation.tools:
        yield Turn(
            f"{len(locations)} matching lines in {len(files)} files; reading them.",
            [_read(f) for f in files],
        )
    lines = ["# Relevant files", "", f"Task: {task_line}", ""]
    for d in directives:
        scope = "the Python files" if d.code_only else "all files"
        lines.append(f"Searched {scope} for `{d.old}` ({d.describe()}).")
    if not directives:
        lines.append(
            "Searched for the task's keywords: "
            + (", ".join(str(c.input["pattern"]) for c in searches) or "none")
            + "."
        )
    lines.append("")
    for path in files:
        lines += [f"## {path}", ""]
        lines += [loc.listed() for loc in locations if loc.path == path]
        lines.append("")
    lines.append(f"Summary: {len(locations)} matching lines in {len(files)} files.")
    written = yield Turn(
        f"Writing my findings to {out}.",
        [Call("Write", {"file_path": out, "content": "\n".join(lines) + "\n"})],
    )
    if not _ok(written[0]):
        return f"I could not write my findings to {out}: {written[0].content}"
    listed = ", ".join(files) if files else "no files"
    return (
        f"Found {len(locations)} matching lines in {len(files)} files ({listed}). "
        f"Findings written to {out}."
    )


# -- planner -------------------------------------------------------------------------------


def _edits_for(
    locations: Iterable[Location], directives: list[Directive], contents: Mapping[str, str]
) -> list[dict[str, object]]:
    edits: list[dict[str, object]] = []
    seen: set[tuple[str, str]] = set()
    for loc in locations:
        new = loc.text
        for d in directives:
            new = d.apply(new)
        if new == loc.text or (loc.path, loc.text) in seen:
            continue
        content = contents.get(loc.path)
        if content is not None and loc.text not in content:
            continue  # stale: the line is no longer in the file
        seen.add((loc.path, loc.text))
        repeats = content.count(loc.text) if content is not None else 1
        edits.append({"file": loc.path, "old": loc.text, "new": new, "replace_all": repeats > 1})
    return edits


def parse_plan_edits(text: str) -> list[dict[str, object]]:
    """The edits of a plan's ```json fleet-edits``` block ([] when none or invalid)."""
    match = _EDITS.search(_unnumbered(text))
    if match is None:
        return []
    try:
        raw = json.loads(match.group(1))
    except ValueError:
        return []
    if not isinstance(raw, list):
        return []
    return [
        e
        for e in raw
        if isinstance(e, dict)
        and isinstance(e.get("file"), str)
        and isinstance(e.get("old"), str)
        and isinstance(e.get("new"), str)
    ]


def _read_all(contents: dict[str, str], files: list[str], results: list[Observation]) -> None:
    for path, result in zip(files, results, strict=False):
        if _ok(result):
            contents[path] = result.content


def planner_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Read the findings (or search), read the files, write a plan with machine-readable edits."""
    if problem := _missing(situation, ("Read", "Write")):
        return problem
    directives = find_directives(situation)
    out = _output_path(situation) or "plan.md"
    inputs = _input_paths(situation, out)
    locations: list[Location] = []
    if inputs:
        results = yield Turn("Reading the findings.", [_read(p) for p in inputs])
        locations = _unique(
            loc for r in results if _ok(r) for loc in _locations(r.content, _LISTED)
        )
    if not locations and "Grep" in situation.tools:
        searches = _searches(directives, _split(situation.prompt)[0])
        if searches:
            results = yield Turn("No findings to go on; searching the code myself.", searches)
            locations = _unique(
                loc for r in results if _ok(r) for loc in _locations(r.content, _GREPPED)
            )
    files = _files(locations)
    contents: dict[str, str] = {}
    if files:
        results = yield Turn("Reading the files involved.", [_read(f) for f in files])
        _read_all(contents, files, results)
    edits = _edits_for(locations, directives, contents)
    edited = sorted({str(e["file"]) for e in edits})
    lines = ["# Plan", "", f"Task: {_task_line(situation)}", "", "## Edits", ""]
    for number, e in enumerate(edits, 1):
        every = " (every occurrence)" if e["replace_all"] else ""
        old, new = str(e["old"]).strip(), str(e["new"]).strip()
        lines.append(f"{number}. `{e['file']}`: replace `{old}` with `{new}`{every}")
    if not edits:
        lines.append("No concrete edit follows from the task and the findings.")
    lines += [
        "",
        "## Then",
        "",
        f"Run the tests: `{TEST_COMMAND}`.",
        "",
        "## Machine-readable edits",
        "",
        "```json fleet-edits",
        json.dumps(edits, indent=1),
        "```",
        "",
    ]
    written = yield Turn(
        f"Writing the plan to {out}.",
        [Call("Write", {"file_path": out, "content": "\n".join(lines)})],
    )
    if not _ok(written[0]):
        return f"I could not write the plan to {out}: {written[0].content}"
    names = ", ".join(edited) or "none"
    return f"Plan written to {out}: {len(edits)} edits in {len(edited)} files ({names})."


# -- builder -------------------------------------------------------------------------------


def _feedback(prompt: str) -> list[Location]:
    if "CHANGES REQUESTED" not in prompt:
        return []
    return _unique(_locations(prompt, _LISTED))


def _edit_key(edit: dict[str, object]) -> tuple[object, ...]:
    return (edit["file"], edit["old"], edit["new"], bool(edit.get("replace_all")))


def builder_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Apply the plan's edits (or the review's list), then run the tests."""
    if problem := _missing(situation, ("Read", "Edit")):
        return problem
    directives = find_directives(situation)
    inputs = _input_paths(situation, None)
    feedback = _feedback(situation.prompt)
    edits: list[dict[str, object]] = []
    if inputs:
        results = yield Turn("Reading the plan.", [_read(p) for p in inputs])
        for result in results:
            if _ok(result):
                found = parse_plan_edits(result.content)
                if not found:  # a scout's findings: plan the edits from them
                    found = _edits_for(_locations(result.content, _LISTED), directives, {})
                edits += found
        # Several scouts find the same lines: an edit asked twice is made once.
        edits = list({_edit_key(e): e for e in edits}.values())
    if feedback:
        files = _files(feedback)
        results = yield Turn(
            f"The review lists {len(feedback)} lines left in {', '.join(files)}; reading them.",
            [_read(f) for f in files],
        )
        contents: dict[str, str] = {}
        _read_all(contents, files, results)
        edits = _edits_for(feedback, directives, contents)
    applied: list[str] = []
    failed: list[str] = []
    if edits:
        calls = [
            Call(
                "Edit",
                {
                    "file_path": e["file"],
                    "old_string": e["old"],
                    "new_string": e["new"],
                    **({"replace_all": True} if e.get("replace_all") else {}),
                },
            )
            for e in edits
        ]
        results = list((yield Turn(f"Applying {len(edits)} edits.", calls)))
        # Claude Code edits only a file read in its session: read those, then edit again.
        unread = [i for i, r in enumerate(results) if not _ok(r) and _UNREAD in r.content]
        if unread:
            files = sorted({str(edits[i]["file"]) for i in unread})
            yield Turn(f"Reading {', '.join(files)} before editing.", [_read(f) for f in files])
            again = yield Turn(f"Applying {len(unread)} edits.", [calls[i] for i in unread])
            for i, result in zip(unread, again, strict=False):
                results[i] = result
        for e, result in zip(edits, results, strict=False):
            (applied if _ok(result) else failed).append(f"{e['file']}: {result.content}")
    tests = ""
    if "Bash" in situation.tools:
        test = [_bash(TEST_COMMAND, "Run the tests")]
        ran = yield from _again(test, (yield Turn("Running the tests.", test)))
        last = yield from or_pytest(ran[0])
        tail = _body(last).strip().splitlines()[-1:] or [last.content.splitlines()[0]]
        tests = f" Tests {tests_verdict(last.content, _ok(last))} ({tail[0].strip()})."
    changed = sorted({a.split(":", 1)[0] for a in applied})
    names = ", ".join(changed) or "none"
    summary = f"Applied {len(applied)} of {len(edits)} edits in {len(changed)} files ({names})."
    if failed:
        summary += f" {len(failed)} failed: " + "; ".join(failed)
    if not edits:
        summary = (
            "The plan holds no edit I could apply." if inputs or feedback else "No plan was given."
        )
    return summary + tests


# -- reviewer ------------------------------------------------------------------------------


def reviewer_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Read the diff, look for what should be gone, run the tests; approve or list what is left."""
    if problem := _missing(situation, ("Bash", "Grep")):
        return problem
    directives = find_directives(situation)
    notes = set(_input_paths(situation, None))
    calls = [_bash("git diff", "Show the change")]
    calls += [_grep(d.pattern) for d in directives]
    calls.append(_bash(TEST_COMMAND, "Run the tests"))
    results = yield Turn(
        "Reviewing the diff, searching for leftovers and running the tests.", calls
    )
    results = yield from _again(calls, results)
    diff, greps, tests = results[0], results[1:-1], results[-1]
    tests = yield from or_pytest(tests)
    left = _unique(
        loc
        for r in greps
        if _ok(r)
        for loc in _locations(r.content, _GREPPED)
        if loc.path not in notes and "/notes/" not in f"/{loc.path}"
    )
    problems: list[str] = []
    if not _ok(diff):
        problems.append(
            f"- `git diff` failed: {diff.content.splitlines()[-1] if diff.content else ''}"
        )
    elif not _body(diff).strip():
        problems.append("- nothing was changed: the diff is empty")
    if left:
        olds = ", ".join(f"`{d.old}`" for d in directives)
        problems.append(f"- {len(left)} occurrences of {olds} are left:")
        problems += [loc.listed() for loc in left]
    verdict = tests_verdict(tests.content, _ok(tests))
    if verdict == "FAIL":
        tail = _body(tests).strip().splitlines()[-3:]
        problems.append(f"- the tests fail: {' / '.join(t.strip() for t in tail)}")
    if problems:
        return "CHANGES REQUESTED:\n" + "\n".join(problems)
    what = "; ".join(d.describe() for d in directives) or "the change"
    files = len(re.findall(r"^diff --git ", _body(diff), re.MULTILINE))
    tested = "the tests pass" if verdict == "pass" else "no test was found to run"
    return f"APPROVED: {what} is complete in {files} files, nothing is left, and {tested}."


# -- shipper -------------------------------------------------------------------------------


def _commit_message(directives: list[Directive], task_line: str) -> str:
    if directives:
        parts = [
            f"Rename {d.old} to {d.new}"
            if d.kind == "rename"
            else f'Replace "{d.old}" with "{d.new}"'
            for d in directives
        ]
        return "; ".join(parts)
    return task_line[:72]


def shipper_policy(situation: Situation) -> Generator[Turn, list[Observation], str]:
    """Commit the change with git; say plainly when that cannot be done."""
    if problem := _missing(situation, ("Bash",)):
        return problem
    message = _commit_message(find_directives(situation), _task_line(situation))
    check = [_bash("git status --short", "Show what changed")]
    status = yield from _again(check, (yield Turn("Checking the repository.", check)))
    if not _ok(status[0]):
        if "not a git repository" in status[0].content:
            return (
                "Cannot ship: the workspace is not a git repository (git status failed), "
                "so there is nothing to commit to."
            )
        return f"Cannot ship: git status failed: {_body(status[0]).strip() or status[0].content}"
    if not _body(status[0]).strip():
        return "Nothing to ship: the working tree is clean."
    command = f"git add -A && git commit -q -m {shlex.quote(message)} && git log -1 --format=%h"
    commit = yield Turn(f"Committing: {message}", [_bash(command, "Commit the change")])
    if _cut_short(commit[0]):  # note 2: made, or not, before the stop
        last = "git log -1 --format=%s%n%h"
        found = yield Turn(
            "The commit was cut short by a stop; looking for it.",
            [*check, _bash(last, "Show the last commit")],
        )
        made = [line.strip() for line in _body(found[1]).strip().splitlines()]
        if _ok(found[0]) and not _body(found[0]).strip() and made[:1] == [message]:
            return f"Committed {made[-1]}: {message}"
        commit = yield Turn(f"Committing: {message}", [_bash(command, "Commit the change")])
    if not _ok(commit[0]):
        return f"Cannot ship: the commit failed: {_body(commit[0]).strip() or commit[0].content}"
    sha = (_body(commit[0]).strip().splitlines() or ["?"])[-1]
    return f"Committed {sha}: {message}"


ROLE_POLICIES: Mapping[str, Policy] = {
    "scout": scout_policy,
    "planner": planner_policy,
    "builder": builder_policy,
    "reviewer": reviewer_policy,
    "shipper": shipper_policy,
}
"""The built-in scripted roles."""
