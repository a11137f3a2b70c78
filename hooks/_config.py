"""Hook settings in the shape of Claude Code's settings.json "hooks" section.

    {"hooks": {"PreToolUse": [{"matcher": "Bash|Write",
                               "hooks": [{"type": "command", "command": "...", "timeout": 30}]}]}}

Handlers are `{"type": "command", "command": ..., "args": [...], "shell": "bash",
"async": true, "if": "Bash(rm *)", "onFailure": "block", "timeout": 30}` or
`{"type": "http", "url": ..., "headers": {...}, "allowedEnvVars": [...]}`, as
Claude Code's hooks reference documents them. A project's settings are
`.fleet/settings.json`, else `.claude/settings.json`.

Notes (do not fix without reading this):
1. A project's `.claude/settings.json` is written for Claude Code too, so what
   fleet does not run is *kept* or *skipped*, never refused: the events Claude
   Code documents that fleet never fires (`DORMANT_POINTS`) and any event name
   fleet does not know (a newer Claude Code's, or a typo) are kept in
   `HooksConfig.kept` as written; an unknown name is also a warning
   (`HooksConfig.warnings`, logged when the settings load). The hook types
   "prompt", "agent" and "mcp_tool", any `fleet hook-forward` command and
   any http hook posting to fleet's ingest (`.../v1/hooks/ingest`: fleet's
   own agents are in the log already; forwarding them would record them
   twice, as external agents beside themselves) and a handler with `if` on
   an event that is not a tool event (Claude Code never runs it) are skipped
   (`HooksConfig.skipped`).
2. Keys fleet does not use (statusMessage, once, ...) are allowed and ignored,
   as Claude Code ignores keys it does not know; the keys fleet does use are
   checked strictly (a string timeout is an error, not coerced).
3. Timeouts default to Claude Code's: 600 s for command and http hooks, 30 s at
   UserPromptSubmit. Claude Code gives SessionEnd hooks a 1.5 s budget as it
   exits; a fleet agent ends without a process exiting, so SessionEnd hooks
   get the 600 s default.
4. A matcher's regular expression is RE2's (linear in the name it reads), and
   Python's `re` only for what RE2 cannot read (look-around, backreferences):
   a matcher runs on the event loop at every hook point, and a backtracking
   pattern such as `(a+)+$` against a role or an agent type of 40 characters
   froze the whole process for hours. (Claude Code reads matchers as
   JavaScript regular expressions; the names they read are single-line, where
   RE2's and Python's syntax agree.)
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import re2  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._points import DOCUMENTED_EVENTS, IF_POINTS, HookPoint
from ._rules import PermissionRule
from .errors import HookConfigError

__all__ = [
    "CLAUDE_ONLY_POINTS",
    "DEFAULT_TIMEOUT",
    "DORMANT_POINTS",
    "SETTINGS_FILES",
    "HookGroup",
    "HookSpec",
    "HooksConfig",
    "Matcher",
    "default_timeout",
    "find_settings",
    "load_project_settings",
    "load_settings",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 600.0
"""Seconds a command or http hook may run when its settings give no `timeout` (Claude Code's)."""

_POINT_TIMEOUTS = {"UserPromptSubmit": 30.0}

SETTINGS_FILES = (".fleet/settings.json", ".claude/settings.json")
"""Where a project's hook settings are looked for, first found wins."""

_POINT_NAMES = tuple(p.value for p in HookPoint)

DORMANT_POINTS = frozenset(name for name in DOCUMENTED_EVENTS if name not in _POINT_NAMES)
"""Claude Code hook events fleet never fires: their settings load and are kept (note 1)."""

CLAUDE_ONLY_POINTS = DORMANT_POINTS
"""The former name of `DORMANT_POINTS`."""

_CLAUDE_ONLY_TYPES = frozenset({"prompt", "agent", "mcp_tool"})
_FORWARD_COMMAND = re.compile(r"\bfleet\s+hook-forward\b")
_INGEST_PATH = re.compile(r"/v1/hooks/ingest/?$")
# Claude Code: a matcher of only letters, digits, "_", "-", spaces, "," and "|" is
# a list of exact names separated by "|" or ",".
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a pattern RE2 cannot read goes to Python's re, quietly
_PLAIN_NAMES = re.compile(r"[A-Za-z0-9_| ,-]+")
_NAME_SEPARATORS = re.compile(r"[|,]")


def default_timeout(point: str) -> float:
    """Claude Code's default timeout of a command or http hook at `point` (note 3)."""
    return _POINT_TIMEOUTS.get(point, DEFAULT_TIMEOUT)


def _compiled(text: str) -> Any:
    """`text` compiled by RE2, else (look-around, backreferences) by Python (note 4)."""
    try:
        return re2.compile(text, _RE2_OPTIONS)
    except re2.error:
        return re.compile(text)


@dataclass(frozen=True, slots=True)
class Matcher:
    """Which tool (or source, trigger, agent type) a hook group applies to.

    Claude Code's rule: `None`, `""` and `"*"` match everything; a pattern of
    letters, digits, `_`, `-`, spaces, `,` and `|` is a list of exact names
    separated by `|` or `,` (`"Edit|Write"`, `"Edit, Write"`, `"code-reviewer"`);
    anything else is a regular expression searched anywhere in the name
    (`"mcp__.*"`, `"^Notebook"`).
    """

    pattern: str | None = None
    matches_all: bool = field(init=False)
    _names: frozenset[str] = field(init=False)
    _regex: Any = field(init=False)  # an RE2 or a Python pattern (note 4)

    def __post_init__(self) -> None:
        text = self.pattern
        every = text is None or text in ("", "*")
        names: frozenset[str] = frozenset()
        regex = None
        if not every:
            assert text is not None
            if _PLAIN_NAMES.fullmatch(text):
                names = frozenset(n.strip() for n in _NAME_SEPARATORS.split(text) if n.strip())
            else:
                regex = _compiled(text)  # raises re.error (note 4)
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
    """One configured handler: a shell `command` or an `http` URL (`target`), and how it runs.

    `args` set means exec form (`target` is the executable, no shell); else
    `shell` picks the shell (None: `/bin/sh`). `detached` (settings: `async`)
    runs it in the background: it cannot decide. `rule` (settings: `if`)
    narrows a tool event's handler to calls the permission rule names.
    `on_failure="block"` makes a hook that cannot start, times out or exits
    with an unexpected code block the action instead of letting it through.
    """

    kind: Literal["command", "http"]
    target: str
    timeout: float = DEFAULT_TIMEOUT
    # http only: header templates ($VAR / ${VAR}) and the variables they may use.
    headers: tuple[tuple[str, str], ...] = ()
    allowed_env_vars: tuple[str, ...] = ()
    args: tuple[str, ...] | None = None
    shell: Literal["bash", "powershell"] | None = None
    detached: bool = False
    rule: PermissionRule | None = None
    on_failure: Literal["continue", "block"] = "continue"

    @property
    def dedupe_key(self) -> str:
        """Identical handlers run once per event: commands by command and args, http by URL."""
        if self.args is None:
            return f"{self.kind} {self.target}"
        return f"{self.kind} {json.dumps([self.target, *self.args])}"


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
    # What was left out on purpose, one line each (note 1).
    skipped: tuple[str, ...] = ()
    # Events fleet never fires, as written (documented ones and unknown names; note 1).
    kept: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # Event names fleet does not know, one line each (note 1).
    warnings: tuple[str, ...] = ()

    @property
    def hook_count(self) -> int:
        """How many hooks are configured, over all points fleet fires."""
        return sum(len(g.hooks) for groups in self.groups.values() for g in groups)


# -- raw shapes, checked strictly ---------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)


class _Settings(_Strict):
    hooks: dict[str, list[Any]] = Field(default_factory=dict)
    disableAllHooks: bool = False


class _Group(_Strict):
    matcher: str | None = None
    hooks: list[Any]


class _Common(_Strict):
    timeout: float | None = Field(default=None, gt=0)
    if_: str | None = Field(default=None, alias="if", min_length=1)
    onFailure: Literal["continue", "block"] = "continue"


class _CommandHook(_Common):
    type: Literal["command"]
    command: str = Field(min_length=1)
    args: list[str] | None = None
    shell: Literal["bash", "powershell"] | None = None
    async_: bool = Field(default=False, alias="async")
    asyncRewake: bool = False


class _HttpHook(_Common):
    type: Literal["http"]
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    allowedEnvVars: list[str] = Field(default_factory=list)


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP header name (RFC 9110's token)."""


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


def http_url_problem(url: str) -> str | None:
    """What is wrong with `url` as an http(s) URL to post to (a hook's, an OTLP receiver's),
    or None: parsed as httpx parses it, so "http://[::1" or a port of 99999 is caught here,
    not at the first post."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as e:
        return f"not a valid URL ({e}): {url!r}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"expected an http:// or https:// URL with a host, got {url!r}"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return f"the port {parsed.port} is not 1-65535 in {url!r}"
    if any(c.isspace() for c in url):
        return f"a URL has no spaces, got {url!r}"
    return None


@dataclass(slots=True)
class _Reading:
    """What parsing found beside the hooks: problems, skipped handlers, warnings."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _rule(raw: str | None, where: str, found: _Reading) -> PermissionRule | None:
    if raw is None:
        return None
    try:
        return PermissionRule.parse(raw)
    except ValueError as e:
        found.problems.append((f"{where}.if", str(e)))
        return None


def _command(raw: Any, point: str, where: str, found: _Reading) -> HookSpec | None:
    cmd = _validate(_CommandHook, raw, where, found.problems)
    if cmd is None:
        return None
    if not cmd.command.strip():
        found.problems.append((f"{where}.command", "must not be blank"))
        return None
    for at, text in [
        ("command", cmd.command),
        *((f"args[{i}]", a) for i, a in enumerate(cmd.args or ())),
    ]:
        if "\0" in text:  # no program can be given one: it failed every call
            found.problems.append((f"{where}.{at}", "holds a NUL character"))
            return None
    if _FORWARD_COMMAND.search(" ".join([cmd.command, *(cmd.args or ())])):
        found.skipped.append(f"{where}: a `fleet hook-forward` command is for Claude Code sessions")
        return None
    rule = _rule(cmd.if_, where, found)
    if cmd.if_ is not None and rule is None:
        return None
    return HookSpec(
        "command",
        cmd.command,
        cmd.timeout or default_timeout(point),
        args=None if cmd.args is None else tuple(cmd.args),
        shell=None if cmd.args is not None else cmd.shell,
        detached=cmd.async_ or cmd.asyncRewake,
        rule=rule,
        on_failure=cmd.onFailure,
    )


def _http(raw: Any, point: str, where: str, found: _Reading) -> HookSpec | None:
    http = _validate(_HttpHook, raw, where, found.problems)
    if http is None:
        return None
    if (bad := http_url_problem(http.url)) is not None:
        found.problems.append((f"{where}.url", bad))
        return None
    for name, value in http.headers.items():  # else every post failed, at run time
        if not _HEADER_NAME.fullmatch(name):
            found.problems.append((f"{where}.headers", f"{name!r} is not an HTTP header name"))
            return None
        if any(c in value for c in "\r\n\0"):
            found.problems.append(
                (f"{where}.headers.{name}", "a header value is one line, without NUL")
            )
            return None
    if _INGEST_PATH.search(urllib.parse.urlsplit(http.url).path):
        found.skipped.append(f"{where}: an http hook to fleet's ingest is for Claude Code sessions")
        return None
    if raw.get("async") is True:
        found.warnings.append(f"{where}: async is for command hooks only; this one runs in line")
    rule = _rule(http.if_, where, found)
    if http.if_ is not None and rule is None:
        return None
    return HookSpec(
        "http",
        http.url,
        http.timeout or default_timeout(point),
        tuple(http.headers.items()),
        tuple(http.allowedEnvVars),
        rule=rule,
        on_failure=http.onFailure,
    )


def _parse_hook(raw: Any, point: str, where: str, found: _Reading) -> HookSpec | None:
    if not isinstance(raw, Mapping):
        found.problems.append((where, f"expected an object, got {type(raw).__name__}"))
        return None
    kind = raw.get("type")
    if kind in ("command", "http") and raw.get("if") is not None and point not in IF_POINTS:
        found.skipped.append(
            f"{where}: `if` is only evaluated on tool events; Claude Code never runs this hook"
        )
        return None
    if kind == "command":
        return _command(raw, point, where, found)
    if kind == "http":
        return _http(raw, point, where, found)
    if kind in _CLAUDE_ONLY_TYPES:
        found.skipped.append(f"{where}: fleet does not run {kind!r} hooks")
        return None
    if kind is None:
        found.problems.append((f"{where}.type", "missing: expected 'command' or 'http'"))
    else:
        found.problems.append(
            (f"{where}.type", f"unknown hook type {kind!r}: expected 'command' or 'http'")
        )
    return None


def _unknown_point(name: str) -> str:
    close = difflib.get_close_matches(name, DOCUMENTED_EVENTS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"unknown hook event {name!r}{hint}: kept, never fired "
        f"(fleet fires {', '.join(_POINT_NAMES)})"
    )


def _parse_groups(name: str, raw_groups: list[Any], found: _Reading) -> tuple[HookGroup, ...]:
    parsed: list[HookGroup] = []
    for i, raw_group in enumerate(raw_groups):
        gwhere = f"hooks.{name}[{i}]"
        group = _validate(_Group, raw_group, gwhere, found.problems)
        if group is None:
            continue
        try:
            matcher = Matcher(group.matcher)
        except re.error as e:
            found.problems.append(
                (f"{gwhere}.matcher", f"invalid regular expression {group.matcher!r}: {e}")
            )
            continue
        specs = [
            spec
            for j, raw_hook in enumerate(group.hooks)
            if (spec := _parse_hook(raw_hook, name, f"{gwhere}.hooks[{j}]", found))
        ]
        if specs:
            parsed.append(HookGroup(matcher, tuple(specs)))
    return tuple(parsed)


def _parse(raw: Any, source: str, project_dir: str | None) -> HooksConfig:
    if not isinstance(raw, Mapping):
        raise HookConfigError(
            source, [("(top level)", f"expected an object, got {type(raw).__name__}")]
        )
    if "hooks" not in raw and any(k in DOCUMENTED_EVENTS for k in raw):
        raw = {"hooks": raw}  # the "hooks" section itself was given
    found = _Reading()
    settings = _validate(_Settings, raw, "", found.problems)
    if settings is None:
        raise HookConfigError(source, found.problems)
    if settings.disableAllHooks:
        return HooksConfig({}, source, project_dir, ("disableAllHooks is true",))
    groups: dict[HookPoint, tuple[HookGroup, ...]] = {}
    kept: dict[str, tuple[Any, ...]] = {}
    for name, raw_groups in settings.hooks.items():
        if name not in _POINT_NAMES:
            kept[name] = tuple(raw_groups)
            if name in DORMANT_POINTS:
                found.skipped.append(f"hooks.{name}: fleet never fires {name} (kept)")
            else:
                found.warnings.append(f"hooks.{name}: {_unknown_point(name)}")
            continue
        if parsed := _parse_groups(name, raw_groups, found):
            groups[HookPoint(name)] = parsed
    if found.problems:
        raise HookConfigError(source, found.problems)
    for line in found.warnings:
        logger.warning("hook settings %s: %s", source, line)
    return HooksConfig(
        groups, source, project_dir, tuple(found.skipped), kept, tuple(found.warnings)
    )


def _project_of(path: Path) -> str:
    folder = path.resolve().parent
    return str(folder.parent if folder.name in (".fleet", ".claude") else folder)


_MAX_SETTINGS_BYTES = 16 * 1024 * 1024
"""A settings file larger than this is refused (Claude Code's are a few KB)."""


def load_settings(
    source: str | os.PathLike[str] | Mapping[str, Any] | HooksConfig | None,
) -> HooksConfig:
    """Validated hook settings from a settings.json path, a parsed dict, or nothing.

    A dict may be a whole settings object (with a "hooks" key) or the "hooks"
    section itself. `None` gives an empty config; a `HooksConfig` is returned as is.
    Reads the file synchronously (settings are read once, at start-up).

    Raises:
        HookConfigError: the file is missing or not JSON, or the settings are
            invalid (a bad regex or `if` rule, a missing command or url, wrong
            types); it names the path and every field at fault. An event name
            fleet does not know is a warning, not an error (note 1).

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
        # Capped: `--hooks` may name a pipe (`<(...)`), or a device that never ends.
        with path.open("rb") as f:
            data = f.read(_MAX_SETTINGS_BYTES + 1)
        if len(data) > _MAX_SETTINGS_BYTES:
            raise HookConfigError(
                str(path), [("(file)", f"over {_MAX_SETTINGS_BYTES} bytes: not a settings file")]
            )
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise HookConfigError(str(path), [("(file)", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise HookConfigError(str(path), [("(file)", f"cannot be read: {e}")]) from e
    try:
        raw = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise HookConfigError(str(path), [("(file)", f"not valid JSON at {where}: {e.msg}")]) from e
    except (ValueError, RecursionError) as e:  # a number past 4,300 digits, nesting too deep
        raise HookConfigError(str(path), [("(file)", f"not valid JSON: {e}")]) from e
    return _parse(raw, str(path), _project_of(path))


def _not_json(word: str) -> Any:
    # Python's json takes NaN and Infinity; Claude Code's JSON.parse refuses them, and an
    # Infinity timeout would be a hook that never times out.
    raise ValueError(f"{word} is not a JSON value")


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
