"""A handler's `if` condition: one permission rule, as Claude Code's settings write them.

    rule = PermissionRule.parse("Bash(rm *)")            # HookConfigError-worthy: ValueError
    rule.matches("Bash", {"command": "cd x && rm -rf build"}, cwd="/repo", project_dir="/repo")

A rule is `Tool` (any call of that tool) or `Tool(content)`:

- `Bash(pattern)`: the pattern is tested against each subcommand of the
  command: the command is split at `&&`, `||`, `;`, `|`, `&` and newlines,
  leading `VAR=value` assignments are dropped, and the commands inside
  `$(...)` and backticks are tested too. `*` matches anything; a trailing
  ` *` also matches nothing (`git *` matches `git`); `prefix:*` is a prefix.
- `Read(...)`, `Edit(...)`, `Write(...)`, `Glob(...)`, `Grep(...)` (and the
  other file tools): a gitignore-style pattern tested against the call's
  path (`file_path`, else `path`): `/src/**` is relative to the project's
  folder, `//abs/path` absolute, `~/x` in the home folder, anything else
  relative to the payload's `cwd`; a pattern without a `/` matches at any
  depth (`*.ts`).

Notes (do not fix without reading this):
1. Like Claude Code's, this filter is best effort and fails open: a command
   that cannot be parsed (unbalanced quotes), a pattern naming more than the
   command while the command holds `$(`, a backtick or `$VAR`, or a tool
   whose rule content fleet cannot read all run the hook. Enforcement belongs
   in the hook itself.
2. A Bash pattern is matched by hand, not as a regular expression: `*a*b*`
   made one of several `.*`, whose backtracking took seconds on a long
   command (a 170 KB heredoc: 3 s), all of it on the event loop.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pathspec

__all__ = ["PATH_TOOLS", "PermissionRule"]

PATH_TOOLS = frozenset(
    {"Read", "Edit", "Write", "MultiEdit", "NotebookEdit", "NotebookRead", "Glob", "Grep", "LS"}
)
"""Tools whose rule content is a path pattern."""

_RULE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.:-]*)(?:\((.*)\))?$", re.DOTALL)
_OPERATORS = frozenset({"&&", "||", ";", "|", "&", ";;", "|&", "\n"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SUBSHELL = re.compile(r"\$\(([^()]*)\)|`([^`]*)`")
_DYNAMIC = re.compile(r"\$\(|`|\$[A-Za-z_{]")


@dataclass(frozen=True, slots=True)
class _BashPattern:
    """A Bash rule's pattern, matched in linear time (note 2)."""

    parts: tuple[str, ...]  # the literal text between the `*`s
    optional_tail: bool = False  # `git *`: also `git` alone

    @classmethod
    def of(cls, pattern: str) -> _BashPattern:
        if pattern.endswith(":*"):
            return cls((pattern[:-2], ""))
        if pattern.endswith(" *"):
            return cls(tuple(pattern[:-2].split("*")), optional_tail=True)
        return cls(tuple(pattern.split("*")))

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of `text` matches (`*` is any text, newlines too)."""
        first, *middle = self.parts
        if not text.startswith(first):
            return False
        at = len(first)
        if not middle:  # no `*`: all of it, or (optional tail) it and then a blank
            rest = text[at:]
            return rest == "" or (self.optional_tail and rest[0].isspace())
        *inner, last = middle
        for part in inner:  # leftmost, greedy: right for `*` alone
            found = text.find(part, at)
            if found < 0:
                return False
            at = found + len(part)
        if not self.optional_tail:
            return len(text) - len(last) >= at and text.endswith(last)
        if len(text) - len(last) >= at and text.endswith(last):
            return True
        found = text.find(last, at)  # `last`, then a blank, then anything
        while found >= 0:
            end = found + len(last)
            if end < len(text) and text[end].isspace():
                return True
            found = text.find(last, found + 1)
        return False


def _tokens(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True  # words split at blanks only; operators split anywhere
    return list(lexer)


def subcommands(command: str) -> list[str] | None:
    """The simple commands of a shell command line, or None when it cannot be parsed."""
    found: list[str] = []
    for inner in _SUBSHELL.finditer(command):
        nested = subcommands(inner.group(1) if inner.group(1) is not None else inner.group(2))
        if nested is None:
            return None
        found += nested
    try:
        tokens = _tokens(command.replace("\n", " ; "))
    except ValueError:
        return None
    current: list[str] = []
    for token in [*tokens, ";"]:
        if token in _OPERATORS:
            while current and _ASSIGNMENT.match(current[0]):
                current.pop(0)
            if current:
                found.append(" ".join(current))
            current = []
        else:
            current.append(token)
    return found


@dataclass(frozen=True, slots=True)
class PermissionRule:
    """One rule of Claude Code's permission syntax: `Tool` or `Tool(content)`."""

    tool: str
    content: str | None = None
    text: str = field(default="", compare=False)
    _bash: _BashPattern | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> PermissionRule:
        """The rule written `text`. Raises `ValueError` saying what is wrong."""
        match = _RULE.match(text.strip())
        if match is None:
            raise ValueError(
                f"{text!r} is not a permission rule: expected Tool or Tool(pattern), "
                'e.g. "Bash(git *)" or "Edit(*.ts)"'
            )
        tool, content = match.group(1), match.group(2)
        if content is not None and not content.strip():
            content = None
        bash = _BashPattern.of(content.strip()) if tool == "Bash" and content is not None else None
        return cls(tool, content, text.strip(), bash)

    def matches(
        self,
        tool_name: object,
        tool_input: object,
        *,
        cwd: str = "",
        project_dir: str = "",
    ) -> bool:
        """Whether a call of `tool_name` with `tool_input` is one this rule names (note 1)."""
        if tool_name != self.tool:
            return False
        if self.content is None:
            return True
        inputs: Mapping[str, Any] = tool_input if isinstance(tool_input, Mapping) else {}
        if self.tool == "Bash":
            return self._matches_command(inputs.get("command"))
        if self.tool in PATH_TOOLS:
            return self._matches_path(inputs, cwd=cwd, project_dir=project_dir)
        return True  # note 1: content fleet cannot read runs the hook

    def _matches_command(self, command: object) -> bool:
        if not isinstance(command, str):
            return True
        assert self.content is not None
        parts = subcommands(command)
        if parts is None:
            return True  # note 1
        pattern = self._bash or _BashPattern.of(self.content.strip())
        if any(pattern.fullmatch(part) for part in parts):
            return True
        words = self.content.replace(":*", "").split()
        if words and words[-1] == "*":
            words.pop()
        return len(words) > 1 and _DYNAMIC.search(command) is not None

    def _matches_path(self, inputs: Mapping[str, Any], *, cwd: str, project_dir: str) -> bool:
        assert self.content is not None
        raw = inputs.get("file_path", inputs.get("path", inputs.get("notebook_path")))
        base_cwd = cwd or project_dir or os.getcwd()
        target = raw if isinstance(raw, str) and raw else base_cwd
        path = os.path.normpath(os.path.join(base_cwd, os.path.expanduser(target)))
        pattern = self.content.strip()
        if pattern.startswith("//"):
            base, pattern = "/", pattern[1:]
        elif pattern.startswith("~/"):
            base, pattern = os.path.expanduser("~"), pattern[1:]
        elif pattern.startswith("/"):
            base = project_dir or base_cwd
        else:
            base = base_cwd
            if pattern.startswith("./"):
                pattern = "/" + pattern[2:]
        rel = os.path.relpath(path, base)
        if rel == ".." or rel.startswith("../"):
            return False
        spec = pathspec.GitIgnoreSpec.from_lines([pattern])
        return spec.match_file(PurePosixPath(rel).as_posix())
