"""Hook settings in the shape of Claude Code's settings.json "hooks" section.

    {"hooks": {"PreToolUse": [{"matcher": "run_command|write_file",
                               "hooks": [{"type": "command", "command": "...", "timeout": 30}]}]}}

Fleet also accepts `{"type": "http", "url": "...", "headers": {...}, "allowedEnvVars": [...]}`.
A project's settings are `.fleet/settings.json`, else `.claude/settings.json`.

Notes (do not fix without reading this):
1. A project's `.claude/settings.json` is written for Claude Code too, so what
   only Claude Code can run is *skipped* (listed in `HooksConfig.skipped`), not an
   error: its other points (PermissionRequest, PostCompact, ...), the hook types
   "prompt", "agent" and "mcp_tool", and any `fleet hook-forward` command (fleet's
   own agents are in the log already; forwarding them would record them twice).
   A name that is no hook point anywhere is a typo, and an error.
2. Keys fleet does not use (statusMessage, once, async, ...) are allowed and
   ignored, as Claude Code ignores keys it does not know; the keys fleet does
   use are checked strictly (a string timeout is an error, not coerced).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._points import HookPoint
from .errors import HookConfigError

__all__ = [
    "CLAUDE_ONLY_POINTS",
    "DEFAULT_TIMEOUT",
    "SETTINGS_FILES",
    "HookGroup",
    "HookSpec",
    "HooksConfig",
    "Matcher",
    "find_settings",
    "load_project_settings",
    "load_settings",
]

DEFAULT_TIMEOUT = 60.0
"""Seconds a hook may run when its settings give no `timeout` (Claude Code's default)."""

SETTINGS_FILES = (".fleet/settings.json", ".claude/settings.json")
"""Where a project's hook settings are looked for, first found wins."""

CLAUDE_ONLY_POINTS = frozenset(
    {
        "PermissionRequest",
        "PermissionDenied",
        "PostCompact",
        "PostToolBatch",
        "StopFailure",
        "TeammateIdle",
        "TaskCreated",
        "TaskCompleted",
        "ConfigChange",
        "InstructionsLoaded",
        "CwdChanged",
        "FileChanged",
        "WorktreeCreate",
        "WorktreeRemove",
        "Elicitation",
        "ElicitationResult",
        "UserPromptExpansion",
        "Setup",
    }
)
"""Claude Code hook points that fleet never fires: skipped when found in settings."""

_CLAUDE_ONLY_TYPES = frozenset({"prompt", "agent", "mcp_tool"})
_FORWARD_COMMAND = re.compile(r"\bfleet\s+hook-forward\b")
# Claude Code: a matcher of only word characters and "|" is a list of exact names.
_PLAIN_NAMES = re.compile(r"[A-Za-z0-9_|]+")
_POINT_NAMES = tuple(p.value for p in HookPoint)


@dataclass(frozen=True, slots=True)
class Matcher:
    """Which tool (or source, trigger, agent type) a hook group applies to.

    Claude Code's semantics: `None`, `""` and `"*"` match everything; a pattern of
    letters, digits, `_` and `|` is a list of exact names (`"Edit|Write"`);
    anything else is a regular expression searched in the name (`"mcp__.*"`).
    """

    pattern: str | None = None
    matches_all: bool = field(init=False)
    _names: frozenset[str] = field(init=False)
    _regex: re.Pattern[str] | None = field(init=False)

    def __post_init__(self) -> None:
        text = self.pattern
        every = text is None or text in ("", "*")
        names: frozenset[str] = frozenset()
        regex = None
        if not every:
            assert text is not None
            if _PLAIN_NAMES.fullmatch(text):
                names = frozenset(n for n in text.split("|") if n)
            else:
                regex = re.compile(text)  # raises re.error
        object.__setattr__(self, "matches_all", every)
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_regex", regex)

    def matches(self, value: object) -> bool:
        """Whether a payload whose matched field is `value` is selected (a missing value is not)."""
        if self.matches_all:
            return True
        if not isinstance(value, str):
            return False
        if self._regex is not None:
            return self._regex.search(value) is not None
        return value in self._names


@dataclass(frozen=True, slots=True)
class HookSpec:
    """One configured hook: a shell `command` or an `http` URL (`target`), with its timeout."""

    kind: Literal["command", "http"]
    target: str
    timeout: float = DEFAULT_TIMEOUT
    # http only: header templates ($VAR / ${VAR}) and the variables they may use.
    headers: tuple[tuple[str, str], ...] = ()
    allowed_env_vars: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HookGroup:
    """A matcher and the hooks that run when it matches."""

    matcher: Matcher
    hooks: tuple[HookSpec, ...]


@dataclass(frozen=True)
class HooksConfig:
    """Validated hook settings: the hook groups of each point, in file order."""

    groups: Mapping[HookPoint, tuple[HookGroup, ...]] = field(default_factory=dict)
    source: str = "<none>"
    # The folder that `CLAUDE_PROJECT_DIR` / `FLEET_PROJECT_DIR` name for command hooks.
    project_dir: str | None = None
    # What was left out on purpose, one line each (see note 1).
    skipped: tuple[str, ...] = ()

    @property
    def hook_count(self) -> int:
        """How many hooks are configured, over all points."""
        return sum(len(g.hooks) for groups in self.groups.values() for g in groups)


# -- raw shapes, checked strictly ---------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _Settings(_Strict):
    hooks: dict[str, list[Any]] = Field(default_factory=dict)
    disableAllHooks: bool = False


class _Group(_Strict):
    matcher: str | None = None
    hooks: list[Any]


class _CommandHook(_Strict):
    type: Literal["command"]
    command: str = Field(min_length=1)
    timeout: float | None = Field(default=None, gt=0)


class _HttpHook(_Strict):
    type: Literal["http"]
    url: str = Field(min_length=1)
    timeout: float | None = Field(default=None, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    allowedEnvVars: list[str] = Field(default_factory=list)


def _where(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], raw: Any, prefix: str, problems: list[tuple[str, str]]) -> _M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            problems.append((_where(prefix, tuple(err["loc"])), err["msg"]))
        return None


def _check_url(url: str) -> str | None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as e:
        return f"not a valid URL: {e}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"expected an http:// or https:// URL with a host, got {url!r}"
    return None


def _parse_hook(
    raw: Any, where: str, problems: list[tuple[str, str]], skipped: list[str]
) -> HookSpec | None:
    if not isinstance(raw, Mapping):
        problems.append((where, f"expected an object, got {type(raw).__name__}"))
        return None
    kind = raw.get("type")
    if kind == "command":
        cmd = _validate(_CommandHook, raw, where, problems)
        if cmd is None:
            return None
        if not cmd.command.strip():
            problems.append((f"{where}.command", "must not be blank"))
            return None
        if _FORWARD_COMMAND.search(cmd.command):
            skipped.append(f"{where}: a `fleet hook-forward` command is for Claude Code sessions")
            return None
        return HookSpec("command", cmd.command, cmd.timeout or DEFAULT_TIMEOUT)
    if kind == "http":
        http = _validate(_HttpHook, raw, where, problems)
        if http is None:
            return None
        if (bad := _check_url(http.url)) is not None:
            problems.append((f"{where}.url", bad))
            return None
        return HookSpec(
            "http",
            http.url,
            http.timeout or DEFAULT_TIMEOUT,
            tuple(http.headers.items()),
            tuple(http.allowedEnvVars),
        )
    if kind in _CLAUDE_ONLY_TYPES:
        skipped.append(f"{where}: fleet does not run {kind!r} hooks")
        return None
    if kind is None:
        problems.append((f"{where}.type", "missing: expected 'command' or 'http'"))
    else:
        problems.append(
            (f"{where}.type", f"unknown hook type {kind!r}: expected 'command' or 'http'")
        )
    return None


def _unknown_point(name: str) -> str:
    close = difflib.get_close_matches(name, _POINT_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown hook point {name!r}{hint} (known points: {', '.join(_POINT_NAMES)})"


def _parse(raw: Any, source: str, project_dir: str | None) -> HooksConfig:
    if not isinstance(raw, Mapping):
        raise HookConfigError(
            source, [("(top level)", f"expected an object, got {type(raw).__name__}")]
        )
    if "hooks" not in raw and any(k in _POINT_NAMES or k in CLAUDE_ONLY_POINTS for k in raw):
        raw = {"hooks": raw}  # the "hooks" section itself was given
    problems: list[tuple[str, str]] = []
    skipped: list[str] = []
    settings = _validate(_Settings, raw, "", problems)
    if settings is None:
        raise HookConfigError(source, problems)
    if settings.disableAllHooks:
        return HooksConfig({}, source, project_dir, ("disableAllHooks is true",))
    groups: dict[HookPoint, tuple[HookGroup, ...]] = {}
    for name, raw_groups in settings.hooks.items():
        where = f"hooks.{name}"
        if name not in _POINT_NAMES:
            if name in CLAUDE_ONLY_POINTS:
                skipped.append(f"{where}: fleet never fires {name}")
            else:
                problems.append((where, _unknown_point(name)))
            continue
        parsed: list[HookGroup] = []
        for i, raw_group in enumerate(raw_groups):
            gwhere = f"{where}[{i}]"
            group = _validate(_Group, raw_group, gwhere, problems)
            if group is None:
                continue
            try:
                matcher = Matcher(group.matcher)
            except re.error as e:
                problems.append(
                    (f"{gwhere}.matcher", f"invalid regular expression {group.matcher!r}: {e}")
                )
                continue
            specs = [
                spec
                for j, raw_hook in enumerate(group.hooks)
                if (spec := _parse_hook(raw_hook, f"{gwhere}.hooks[{j}]", problems, skipped))
            ]
            if specs:
                parsed.append(HookGroup(matcher, tuple(specs)))
        if parsed:
            groups[HookPoint(name)] = tuple(parsed)
    if problems:
        raise HookConfigError(source, problems)
    return HooksConfig(groups, source, project_dir, tuple(skipped))


def _project_of(path: Path) -> str:
    folder = path.resolve().parent
    return str(folder.parent if folder.name in (".fleet", ".claude") else folder)


def load_settings(
    source: str | os.PathLike[str] | Mapping[str, Any] | HooksConfig | None,
) -> HooksConfig:
    """Validated hook settings from a settings.json path, a parsed dict, or nothing.

    A dict may be a whole settings object (with a "hooks" key) or the "hooks"
    section itself. `None` gives an empty config; a `HooksConfig` is returned as is.
    Reads the file synchronously (settings are read once, at start-up).

    Raises:
        HookConfigError: the file is missing or not JSON, or the settings are
            invalid (unknown point, bad regex, missing command or url, wrong
            types); it names the path and every field at fault.

    The argument is never mutated.
    """
    if source is None:
        return HooksConfig()
    if isinstance(source, HooksConfig):
        return source
    if isinstance(source, Mapping):
        return _parse(source, "<dict>", None)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HookConfigError(str(path), [("(file)", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise HookConfigError(str(path), [("(file)", f"cannot be read: {e}")]) from e
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise HookConfigError(str(path), [("(file)", f"not valid JSON at {where}: {e.msg}")]) from e
    return _parse(raw, str(path), _project_of(path))


def find_settings(project_dir: str | os.PathLike[str]) -> Path | None:
    """The project's `.fleet/settings.json`, else its `.claude/settings.json`, if any."""
    for name in SETTINGS_FILES:
        path = Path(project_dir) / name
        if path.is_file():
            return path
    return None


def load_project_settings(project_dir: str | os.PathLike[str]) -> HooksConfig:
    """The hook settings of a project folder; an empty config when it has no settings file.

    Raises:
        HookConfigError: the settings file found is invalid.
    """
    path = find_settings(project_dir)
    if path is None:
        return HooksConfig(project_dir=str(Path(project_dir).resolve()))
    return load_settings(path)
