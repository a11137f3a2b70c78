"""Hook settings: Claude Code's settings.json "hooks" shape, validated with clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hooks import (
    DEFAULT_TIMEOUT,
    HookConfigError,
    HookDispatcher,
    HookPoint,
    HooksConfig,
    Matcher,
    find_settings,
    load_project_settings,
    load_settings,
)

BLOCK_RM = {
    "hooks": {
        "PreToolUse": [
            {
                "matcher": "Bash|Write",
                "hooks": [{"type": "command", "command": "./guard.sh", "timeout": 30}],
            }
        ],
        "PostToolUse": [{"hooks": [{"type": "http", "url": "http://127.0.0.1:9/hook"}]}],
    }
}


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_settings_file_loads_groups_in_file_order(tmp_path: Path) -> None:
    config = load_settings(write(tmp_path / "settings.json", BLOCK_RM))
    [pre] = config.groups[HookPoint.PreToolUse]
    assert pre.matcher.pattern == "Bash|Write"
    assert [(h.kind, h.target, h.timeout) for h in pre.hooks] == [("command", "./guard.sh", 30.0)]
    [post] = config.groups[HookPoint.PostToolUse]
    assert post.hooks[0].kind == "http"
    assert post.hooks[0].timeout == DEFAULT_TIMEOUT == 600.0  # Claude Code's default
    assert config.hook_count == 2
    assert config.source == str(tmp_path / "settings.json")


def test_a_dict_may_be_the_hooks_section_itself() -> None:
    assert load_settings(BLOCK_RM["hooks"]).hook_count == 2
    assert load_settings({}).hook_count == 0
    assert load_settings(None) == HooksConfig()


def test_project_settings_prefer_fleet_over_claude(tmp_path: Path) -> None:
    assert find_settings(tmp_path) is None
    assert load_project_settings(tmp_path).hook_count == 0
    write(tmp_path / ".claude" / "settings.json", BLOCK_RM)
    assert find_settings(tmp_path) == tmp_path / ".claude" / "settings.json"
    write(tmp_path / ".fleet" / "settings.json", {"hooks": {}})
    assert find_settings(tmp_path) == tmp_path / ".fleet" / "settings.json"
    config = load_project_settings(tmp_path)
    assert config.hook_count == 0
    assert config.project_dir == str(tmp_path.resolve())


def test_claude_code_only_entries_are_skipped_not_errors(tmp_path: Path) -> None:
    """A real .claude/settings.json (prompt hooks, PostCompact, hook-forward) still loads."""
    settings = {
        "permissions": {"allow": ["Bash(npm test)"]},
        "hooks": {
            "PostCompact": [{"hooks": [{"type": "command", "command": "notify"}]}],
            "Stop": [
                {
                    "hooks": [
                        {"type": "prompt", "prompt": "Are the tests green?"},
                        {"type": "command", "command": "fleet hook-forward --source-app shop"},
                        # The README's http form of the same: fleet's agents would show twice.
                        {"type": "http", "url": "http://127.0.0.1:8000/v1/hooks/ingest"},
                        {"type": "command", "command": "./lint.sh", "statusMessage": "Linting"},
                    ]
                }
            ],
        },
    }
    config = load_settings(write(tmp_path / ".claude" / "settings.json", settings))
    assert [h.target for g in config.groups[HookPoint.Stop] for h in g.hooks] == ["./lint.sh"]
    assert len(config.skipped) == 4
    assert any("PostCompact" in line for line in config.skipped)
    assert any("http hook to fleet's ingest" in line for line in config.skipped)
    assert config.kept["PostCompact"] == (settings["hooks"]["PostCompact"][0],)
    assert any("hook-forward" in line for line in config.skipped)
    assert config.project_dir == str(tmp_path.resolve())


def test_disable_all_hooks_gives_no_hooks() -> None:
    config = load_settings({**BLOCK_RM, "disableAllHooks": True})
    assert config.hook_count == 0
    assert config.skipped == ("disableAllHooks is true",)


@pytest.mark.parametrize(
    ("settings", "field", "words"),
    [
        (
            {"hooks": {"PreToolUse": [{"matcher": "run_(command", "hooks": []}]}},
            "hooks.PreToolUse[0].matcher",
            "invalid regular expression 'run_(command'",
        ),
        (
            {"hooks": {"PreToolUse": [{"hooks": [{"type": "command"}]}]}},
            "hooks.PreToolUse[0].hooks[0].command",
            "Field required",
        ),
        (
            {"hooks": {"PreToolUse": [{"hooks": [{"type": "command", "command": "  "}]}]}},
            "hooks.PreToolUse[0].hooks[0].command",
            "must not be blank",
        ),
        (
            {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "x", "timeout": "5"}]}]}},
            "hooks.Stop[0].hooks[0].timeout",
            "valid number",
        ),
        (
            {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "x", "timeout": 0}]}]}},
            "hooks.Stop[0].hooks[0].timeout",
            "greater than 0",
        ),
        (
            {"hooks": {"Stop": [{"hooks": [{"type": "http", "url": "ftp://x/y"}]}]}},
            "hooks.Stop[0].hooks[0].url",
            "http:// or https://",
        ),
        (
            {"hooks": {"Stop": [{"hooks": [{"type": "http", "url": "http://[::1"}]}]}},
            "hooks.Stop[0].hooks[0].url",
            "not a valid URL",
        ),
        (
            {"hooks": {"Stop": [{"hooks": [{"type": "http", "url": "http://h:99999/x"}]}]}},
            "hooks.Stop[0].hooks[0].url",
            "port 99999 is not 1-65535",
        ),
        (
            {"hooks": {"Stop": [{"hooks": [{"type": "comand", "command": "x"}]}]}},
            "hooks.Stop[0].hooks[0].type",
            "unknown hook type 'comand'",
        ),
        (
            {"hooks": {"Stop": [{"hooks": [{"command": "x"}]}]}},
            "hooks.Stop[0].hooks[0].type",
            "missing",
        ),
        ({"hooks": {"Stop": {"hooks": []}}}, "hooks.Stop", "valid list"),
        ({"hooks": {"Stop": [{"matcher": 3, "hooks": []}]}}, "hooks.Stop[0].matcher", "string"),
        ({"hooks": []}, "hooks", "valid dictionary"),
        # These loaded, and then failed every call of the hook, at run time.
        (
            {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "echo a\0b"}]}]}},
            "hooks.Stop[0].hooks[0].command",
            "holds a NUL character",
        ),
        (
            {
                "hooks": {
                    "Stop": [
                        {"hooks": [{"type": "command", "command": "echo", "args": ["a", "b\0"]}]}
                    ]
                }
            },
            "hooks.Stop[0].hooks[0].args[1]",
            "holds a NUL character",
        ),
        (
            {
                "hooks": {
                    "Stop": [
                        {
                            "hooks": [
                                {
                                    "type": "http",
                                    "url": "http://127.0.0.1:9/",
                                    "headers": {"X-Team\n": "a"},
                                }
                            ]
                        }
                    ]
                }
            },
            "hooks.Stop[0].hooks[0].headers",
            "'X-Team\\n' is not an HTTP header name",
        ),
        (
            {
                "hooks": {
                    "Stop": [
                        {
                            "hooks": [
                                {
                                    "type": "http",
                                    "url": "http://127.0.0.1:9/",
                                    "headers": {"X-Team": "a\r\nEvil: 1"},
                                }
                            ]
                        }
                    ]
                }
            },
            "hooks.Stop[0].hooks[0].headers.X-Team",
            "a header value is one line, without NUL",
        ),
    ],
)
def test_bad_settings_name_the_path_and_the_field(
    tmp_path: Path, settings: object, field: str, words: str
) -> None:
    path = write(tmp_path / "settings.json", settings)
    with pytest.raises(HookConfigError) as info:
        load_settings(path)
    err = info.value
    assert err.path == str(path)
    assert err.field == field
    assert words in err.detail
    assert str(path) in str(err)
    assert field in str(err)


def test_every_problem_is_reported_at_once() -> None:
    settings = {
        "hooks": {
            "Stop": [{"hooks": [{"type": "command"}]}],
            "PreToolUse": [{"matcher": "(", "hooks": [{"type": "http"}]}],
        }
    }
    with pytest.raises(HookConfigError) as info:
        load_settings(settings)
    fields = [field for field, _ in info.value.problems]
    assert fields == ["hooks.Stop[0].hooks[0].command", "hooks.PreToolUse[0].matcher"]
    assert info.value.path == "<dict>"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not valid JSON at line 1 column 2"),
        ("[1, 2]", "expected an object"),
        # These raised a RecursionError or a ValueError with a traceback, naming no file.
        ("[" * 100_000 + "]" * 100_000, "not valid JSON: maximum recursion depth"),
        ('{"hooks": {}, "n": ' + "9" * 5000 + "}", "not valid JSON: Exceeds the limit"),
        # Python's json reads these; Claude Code's JSON.parse does not (a timeout that never is).
        (
            '{"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "true", '
            '"timeout": Infinity}]}]}}',
            "not valid JSON: Infinity is not a JSON value",
        ),
        ('{"hooks": {}, "n": NaN}', "not valid JSON: NaN is not a JSON value"),
    ],
)
def test_a_file_that_is_not_a_settings_object_is_refused(
    tmp_path: Path, text: str, words: str
) -> None:
    with pytest.raises(HookConfigError, match=words):
        load_settings(write(tmp_path / "settings.json", text))


def test_a_missing_settings_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HookConfigError) as info:
        load_settings(tmp_path / "nope.json")
    assert info.value.detail == "no such file"
    assert "nope.json" in str(info.value)


@pytest.mark.parametrize(
    ("pattern", "name", "selected"),
    [
        (None, "Bash", True),
        ("", "anything", True),
        ("*", "anything", True),
        ("Bash", "Bash", True),
        ("Bash", "BashOutput", False),  # plain names match exactly
        ("Edit|Write", "Write", True),
        ("Edit, Write", "Write", True),  # "," separates names too, with spaces around
        ("Edit ,Write", "Edit", True),
        ("code-reviewer", "code-reviewer", True),  # a "-" keeps a name exact
        ("code-reviewer", "senior-code-reviewer", False),
        ("mcp__memory", "mcp__memory__create_entities", False),  # exact: matches no tool
        ("Edit.*", "NotebookEdit", True),  # anything else is a regex searched anywhere
        ("^Edit$", "NotebookEdit", False),
        ("^Notebook", "NotebookEdit", True),
        ("mcp__.*__create", "mcp__github__create_issue", True),
        ("mcp__brave-search__.*", "mcp__brave-search__web", True),
    ],
)
def test_matchers_follow_claude_code_semantics(
    pattern: str | None, name: str, selected: bool
) -> None:
    assert Matcher(pattern).matches(name) is selected


@pytest.mark.parametrize(
    ("pattern", "name", "selected"),
    [
        ("(?<!Notebook)Edit", "NotebookEdit", False),  # look-behind: Python's re reads it
        ("(?<!Notebook)Edit", "Edit", True),
        (r"(\w)\1", "Bash", False),  # a backreference too
        (r"(\w)\1", "Kill", True),
    ],
)
def test_a_matcher_only_pythons_re_reads_still_works(
    pattern: str, name: str, selected: bool
) -> None:
    assert Matcher(pattern).matches(name) is selected


def test_a_backtracking_matcher_does_not_freeze_the_process() -> None:
    """Regression: `(a+)+$` against 40 characters took Python's re hours, on the event loop."""
    check = "from hooks import Matcher; print(Matcher('(a+)+$').matches('a' * 40 + '!'))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_a_matcher_never_selects_a_missing_name() -> None:
    assert not Matcher("Bash").matches(None)
    assert Matcher("*").matches(None)


async def test_add_python_refuses_a_bad_matcher_or_timeout() -> None:
    async with HookDispatcher() as hooks:
        with pytest.raises(HookConfigError, match="matcher"):
            hooks.add_python("PreToolUse", lambda p: None, matcher="(")
        with pytest.raises(HookConfigError, match="timeout"):
            hooks.add_python("PreToolUse", lambda p: None, timeout=0)
        assert not hooks.has_hooks("PreToolUse")


def test_a_settings_file_that_never_ends_is_refused_not_read_forever(tmp_path: Path) -> None:
    """`--hooks` naming a device (or a pipe that streams) read it to the end of memory."""
    (tmp_path / "settings.json").symlink_to("/dev/zero")
    with pytest.raises(HookConfigError) as info:
        load_settings(tmp_path / "settings.json")
    assert info.value.detail == "over 16777216 bytes: not a settings file"
