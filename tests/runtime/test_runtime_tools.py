"""The worker tools in a workspace: files, search, commands; bad input gets a clear error."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from runtime import Toolbox, ToolContext, ToolInputInvalid, Workspace, worker_toolbox


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def hello():\n    return 'hello'\n\nhello()\n")
    (root / "README.md").write_text("# App\n\nCall hello() to greet.\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("hello in a hidden folder\n")
    return Workspace(root)


@pytest.fixture
def tools() -> Toolbox:
    return worker_toolbox()


def _alive(pid: int) -> bool:
    """True if `pid` runs (a killed child no one has reaped yet is a zombie: not alive)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def ctx(ws: Workspace) -> ToolContext:
    return ToolContext(workspace=ws, agent_id="a1")


def test_tool_definitions_come_from_the_input_models(tools: Toolbox) -> None:
    defs = {d["name"]: d for d in tools.definitions()}
    assert list(defs) == [
        "read_file",
        "write_file",
        "edit_file",
        "list_files",
        "grep",
        "run_command",
    ]
    edit = defs["edit_file"]["input_schema"]
    assert edit["required"] == ["path", "old_string", "new_string"]
    assert edit["additionalProperties"] is False
    assert all(d["description"] for d in defs.values())


async def test_read_file_returns_the_text_and_records_the_read(
    tools: Toolbox, ws: Workspace
) -> None:
    result = await tools.call("read_file", {"path": "src/app.py", "offset": 2, "limit": 1}, ctx(ws))
    assert result.content == "    return 'hello'\n"
    assert result.files_read == ("src/app.py",)
    assert not result.is_error


async def test_write_file_creates_folders_and_records_the_write(
    tools: Toolbox, ws: Workspace
) -> None:
    result = await tools.call(
        "write_file", {"path": "notes/plan.md", "content": "# Plan\n"}, ctx(ws)
    )
    assert result.files_written == ("notes/plan.md",)
    assert (ws.root / "notes" / "plan.md").read_text() == "# Plan\n"


async def test_edit_file_replaces_exactly_one_match(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call(
        "edit_file",
        {"path": "src/app.py", "old_string": "def hello():", "new_string": "def greet():"},
        ctx(ws),
    )
    assert result.content == "replaced 1 occurrence in src/app.py"
    assert result.files_written == ("src/app.py",)
    assert (ws.root / "src" / "app.py").read_text().startswith("def greet():")


async def test_edit_file_refuses_zero_or_several_matches_and_writes_nothing(
    tools: Toolbox, ws: Workspace
) -> None:
    before = (ws.root / "src" / "app.py").read_text()
    missing = await tools.call(
        "edit_file", {"path": "src/app.py", "old_string": "nope", "new_string": "x"}, ctx(ws)
    )
    several = await tools.call(
        "edit_file", {"path": "src/app.py", "old_string": "hello", "new_string": "x"}, ctx(ws)
    )
    assert missing.is_error
    assert "not found in src/app.py" in missing.content
    assert several.is_error
    assert "occurs 3 times" in several.content
    assert "replace_all" in several.content
    assert (ws.root / "src" / "app.py").read_text() == before


async def test_edit_file_with_replace_all_replaces_every_match(
    tools: Toolbox, ws: Workspace
) -> None:
    result = await tools.call(
        "edit_file",
        {"path": "src/app.py", "old_string": "hello", "new_string": "greet", "replace_all": True},
        ctx(ws),
    )
    assert result.content == "replaced 3 occurrences in src/app.py"
    assert "hello" not in (ws.root / "src" / "app.py").read_text()


async def test_list_files_globs_and_skips_hidden_folders(tools: Toolbox, ws: Workspace) -> None:
    everything = await tools.call("list_files", {}, ctx(ws))
    assert everything.content.splitlines() == ["README.md", "src/app.py"]
    python = await tools.call("list_files", {"pattern": "*.py"}, ctx(ws))
    assert python.content == "src/app.py"


async def test_grep_prints_paths_and_line_numbers_and_records_the_matching_files(
    tools: Toolbox, ws: Workspace
) -> None:
    result = await tools.call("grep", {"pattern": r"hello\("}, ctx(ws))
    assert result.content.splitlines() == [
        "README.md:3:Call hello() to greet.",
        "src/app.py:1:def hello():",
        "src/app.py:4:hello()",
    ]
    assert result.files_read == ("README.md", "src/app.py")


async def test_grep_is_capped_and_says_how_many_were_left_out(
    tools: Toolbox, ws: Workspace
) -> None:
    (ws.root / "many.txt").write_text("x\n" * 50)
    result = await tools.call("grep", {"pattern": "x", "max_results": 10}, ctx(ws))
    assert len(result.content.splitlines()) == 11
    assert result.content.endswith("[... 40 more matching lines not shown]")


async def test_grep_with_a_bad_regex_is_an_input_error(tools: Toolbox, ws: Workspace) -> None:
    result = await tools.call("grep", {"pattern": "("}, ctx(ws))
    assert result.is_error
    assert result.content.startswith(
        "invalid input for grep: pattern: not a valid regular expression"
    )


async def test_input_that_does_not_match_the_schema_is_a_clear_tool_error(
    tools: Toolbox, ws: Workspace
) -> None:
    result = await tools.call("read_file", {"file": "src/app.py"}, ctx(ws))
    assert result.is_error
    assert "invalid input for read_file" in result.content
    assert "path: Field required" in result.content
    assert "file: Extra inputs are not permitted" in result.content
    with pytest.raises(ToolInputInvalid):
        tools.validate("run_command", {"command": "ls", "timeout_s": -1})


async def test_an_unknown_tool_is_an_error_that_lists_the_tools(
    tools: Toolbox, ws: Workspace
) -> None:
    result = await tools.call("delete_everything", {}, ctx(ws))
    assert result.is_error
    assert "unknown tool 'delete_everything'" in result.content
    assert "read_file" in result.content


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read_file", {"path": "../secret.txt"}),
        ("write_file", {"path": "/tmp/fleet-escape.txt", "content": "x"}),
        ("edit_file", {"path": "../secret.txt", "old_string": "a", "new_string": "b"}),
        ("grep", {"pattern": "x", "path": ".."}),
        ("list_files", {"path": "../"}),
    ],
)
async def test_file_tools_cannot_leave_the_workspace(
    tools: Toolbox, ws: Workspace, tool: str, args: dict[str, object]
) -> None:
    (ws.root.parent / "secret.txt").write_text("a secret")
    result = await tools.call(tool, args, ctx(ws))
    assert result.is_error
    assert "is outside the workspace" in result.content
    assert not Path("/tmp/fleet-escape.txt").exists()  # noqa: ASYNC240 (one stat in a test)
    assert (ws.root.parent / "secret.txt").read_text() == "a secret"


async def test_a_symlink_pointing_out_cannot_be_read_or_written_through(
    tools: Toolbox, ws: Workspace
) -> None:
    outside = ws.root.parent / "outside"
    outside.mkdir()
    (outside / "key").write_text("s3cret")
    os.symlink(outside, ws.root / "link")
    read = await tools.call("read_file", {"path": "link/key"}, ctx(ws))
    write = await tools.call("write_file", {"path": "link/new", "content": "x"}, ctx(ws))
    listed = await tools.call("grep", {"pattern": "s3cret"}, ctx(ws))
    assert read.is_error
    assert write.is_error
    assert "s3cret" not in read.content
    assert not (outside / "new").exists()
    assert listed.content == "no matches"


async def test_run_command_runs_in_the_workspace_and_reports_the_exit_code(
    tools: Toolbox, ws: Workspace
) -> None:
    ok = await tools.call("run_command", {"command": "pwd && echo out && echo err >&2"}, ctx(ws))
    assert ok.content.startswith("exit code 0")
    assert str(ws.root) in ok.content
    assert "out" in ok.content
    assert "err" in ok.content
    failed = await tools.call("run_command", {"command": "exit 3"}, ctx(ws))
    assert failed.is_error
    assert failed.content.startswith("exit code 3")


async def test_run_command_kills_the_whole_process_group_on_timeout(
    tools: Toolbox, ws: Workspace
) -> None:
    started = time.perf_counter()
    result = await tools.call(
        "run_command",
        {"command": "sleep 30 & echo $! > child.pid; echo started; wait", "timeout_s": 0.5},
        ctx(ws),
    )
    assert time.perf_counter() - started < 5
    assert result.is_error
    assert result.content.startswith(
        "timed out after 0.5s: the command and every process it started were killed"
    )
    assert "started" in result.content
    child = int((ws.root / "child.pid").read_text())
    for _ in range(50):
        if not _alive(child):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the background child survived the timeout")


async def test_run_command_caps_a_flood_of_output(ws: Workspace) -> None:
    tools = worker_toolbox(["run_command"], max_output_chars=1000)
    started = time.perf_counter()
    result = await tools.call("run_command", {"command": "yes flood", "timeout_s": 60}, ctx(ws))
    assert result.is_error
    assert result.content.startswith(
        "output over 1048576 bytes: the command and every process it started were killed"
    )
    assert time.perf_counter() - started < 30
    assert len(result.content) < 1200
    assert "[... output truncated" in result.content


async def test_tools_refuse_a_workspace_deleted_under_them(tools: Toolbox, tmp_path: Path) -> None:
    root = tmp_path / "gone"
    root.mkdir()
    ws = Workspace(root)
    root.rmdir()
    result = await tools.call("run_command", {"command": "true"}, ctx(ws))
    assert result.is_error
    assert "does not exist" in result.content
