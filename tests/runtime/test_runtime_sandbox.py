"""The file tools' sandbox: fleet's control files, .git, the log and foreign hard links are
never written; paths are walked by descriptor, so swapping a folder for a symlink mid-call
cannot redirect a read or a write."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from runtime import (
    Sandbox,
    Toolbox,
    ToolContext,
    ToolError,
    Workspace,
    WorkspaceEscape,
    WriteRefused,
    worker_toolbox,
)
from runtime._workspace import MAX_DEPTH


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / ".fleet").mkdir(parents=True)
    (root / ".fleet" / "fleet.db").write_bytes(b"SQLite format 3\x00 the log")
    (root / ".fleet" / "settings.json").write_text('{"hooks": {}}')
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n")
    (root / ".claude").mkdir()
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('hello')\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("s3cret\n")
    return Workspace(root)


def ctx(ws: Workspace) -> ToolContext:
    return ToolContext(workspace=ws, agent_id="a1")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (through no symlink) and its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


PROTECTED = [
    (".fleet/fleet.db", ".fleet holds fleet's own files"),
    (".fleet/settings.json", ".fleet holds fleet's own files"),
    (".fleet/anything-new.txt", ".fleet holds fleet's own files"),
    (".git/hooks/pre-commit", ".git belongs to git"),
    (".git/config", ".git belongs to git"),
    (".GIT/config", ".git belongs to git"),
    ("src/.git/hooks/post-checkout", ".git belongs to git"),
    (".claude/settings.json", "settings.json configures hooks that run commands"),
    (".claude/settings.local.json", "settings.local.json configures hooks that run commands"),
]


@pytest.mark.parametrize(("path", "reason"), PROTECTED)
async def test_control_files_are_refused_to_write_and_nothing_changes(
    ws: Workspace, tmp_path: Path, path: str, reason: str
) -> None:
    before = snapshot(tmp_path)
    result = await worker_toolbox().call("Write", {"file_path": path, "content": "x"}, ctx(ws))
    assert result.is_error
    assert result.content.startswith("refused to write ")
    assert reason in result.content
    assert snapshot(tmp_path) == before
    assert not (ws.root / ".git" / "hooks" / "pre-commit").exists()


@pytest.mark.parametrize("path", [".fleet/settings.json", ".git/config"])
async def test_control_files_are_refused_to_edit(ws: Workspace, path: str) -> None:
    before = (ws.root / path).read_bytes()
    old = "hooks" if "settings" in path else "core"
    result = await worker_toolbox().call(
        "Edit", {"file_path": path, "old_string": old, "new_string": "x"}, ctx(ws)
    )
    assert result.is_error
    assert result.content.startswith(f"refused to write {path}:")
    assert (ws.root / path).read_bytes() == before


async def test_git_stays_readable_and_fleet_notes_writable(ws: Workspace) -> None:
    tools = worker_toolbox()
    read = await tools.call("Read", {"file_path": ".git/config"}, ctx(ws))
    found = await tools.call(
        "Grep", {"pattern": "core", "path": ".git", "output_mode": "content"}, ctx(ws)
    )
    note = await tools.call(
        "Write", {"file_path": ".fleet/notes/plan.md", "content": "# Plan\n"}, ctx(ws)
    )
    assert (read.content, read.is_error) == ("[core]\n", False)
    assert found.content == ".git/config:1:[core]"
    assert not note.is_error
    assert (ws.root / ".fleet" / "notes" / "plan.md").read_text() == "# Plan\n"


async def test_a_symlink_inside_the_workspace_does_not_lead_around_the_rules(
    ws: Workspace,
) -> None:
    os.symlink(".git", ws.root / "docs")
    os.symlink(".fleet/settings.json", ws.root / "settings-link.json")
    os.symlink("src/app.py", ws.root / "app-link.py")
    tools = worker_toolbox()
    hook = await tools.call(
        "Write", {"file_path": "docs/hooks/pre-commit", "content": "rm -rf ~"}, ctx(ws)
    )
    settings = await tools.call(
        "Write", {"file_path": "settings-link.json", "content": "{}"}, ctx(ws)
    )
    fine = await tools.call("Write", {"file_path": "app-link.py", "content": "pass\n"}, ctx(ws))
    assert hook.content.startswith("refused to write .git/hooks/pre-commit: .git belongs to git")
    assert settings.content.startswith("refused to write .fleet/settings.json")
    assert not (ws.root / ".git" / "hooks" / "pre-commit").exists()
    assert (ws.root / ".fleet" / "settings.json").read_text() == '{"hooks": {}}'
    assert fine.content == "wrote 5 bytes to src/app.py"
    assert (ws.root / "src" / "app.py").read_text() == "pass\n"


@pytest.mark.parametrize("name", ["events.db", "events.db-wal", "events.db-shm", "EVENTS.DB"])
async def test_the_log_at_a_custom_path_inside_the_workspace_is_refused(
    ws: Workspace, name: str
) -> None:
    data = ws.root / "data"
    data.mkdir()
    (data / "events.db").write_bytes(b"SQLite format 3\x00")
    tools = worker_toolbox(log_path=data / "events.db")
    before = snapshot(data)
    result = await tools.call("Write", {"file_path": f"data/{name}", "content": "x"}, ctx(ws))
    assert result.is_error
    assert result.content == f"refused to write data/{name}: it is fleet's event log"
    assert snapshot(data) == before


async def test_the_log_is_refused_through_a_symlink_or_a_hard_link(ws: Workspace) -> None:
    data = ws.root / "data"
    data.mkdir()
    log = data / "events.db"
    log.write_bytes(b"SQLite format 3\x00")
    os.symlink("data/events.db", ws.root / "alias.db")
    os.link(log, ws.root / "copy.db")
    tools = worker_toolbox(log_path=log)
    for path in ("alias.db", "copy.db"):
        result = await tools.call("Write", {"file_path": path, "content": "x"}, ctx(ws))
        assert result.is_error
        assert "it is fleet's event log" in result.content
    edit = await tools.call(
        "Edit", {"file_path": "copy.db", "old_string": "SQLite", "new_string": "x"}, ctx(ws)
    )
    assert "it is fleet's event log" in edit.content
    assert log.read_bytes() == b"SQLite format 3\x00"


async def test_a_hard_link_to_a_file_outside_is_read_but_never_written(
    ws: Workspace, tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    os.link(secret, ws.root / "linked.txt")
    tools = worker_toolbox()
    read = await tools.call("Read", {"file_path": "linked.txt"}, ctx(ws))
    write = await tools.call("Write", {"file_path": "linked.txt", "content": "pwned"}, ctx(ws))
    edit = await tools.call(
        "Edit", {"file_path": "linked.txt", "old_string": "s3cret", "new_string": "x"}, ctx(ws)
    )
    assert read.content == "s3cret\n"
    for result in (write, edit):
        assert result.is_error
        assert result.content.startswith(
            "refused to write linked.txt: it is a hard link (2 names) to a file this agent did "
            "not create"
        )
    assert secret.read_text() == "s3cret\n"


def test_the_sandbox_raises_write_refused_with_the_path_and_the_reason(ws: Workspace) -> None:
    with pytest.raises(WriteRefused) as info:
        Sandbox().write(ws, ".fleet/settings.json", b"{}")
    assert info.value.path == ".fleet/settings.json"
    assert info.value.reason.startswith(".fleet holds fleet's own files")


async def test_a_file_the_agent_created_stays_writable_after_it_links_it(ws: Workspace) -> None:
    tools = worker_toolbox()
    await tools.call("Write", {"file_path": "mine.txt", "content": "one"}, ctx(ws))
    os.link(ws.root / "mine.txt", ws.root / "mine-too.txt")  # as `ln` in Bash would
    again = await tools.call("Write", {"file_path": "mine-too.txt", "content": "two"}, ctx(ws))
    assert again.content == "wrote 3 bytes to mine-too.txt"
    assert (ws.root / "mine.txt").read_text() == "two"
    other_agent = await worker_toolbox().call(
        "Write", {"file_path": "mine.txt", "content": "three"}, ctx(ws)
    )
    assert other_agent.is_error


# -- races: the tree changes between two steps of one call --------------------------------


def swap_for_symlink(folder: Path, target: Path) -> None:
    """Move `folder` aside and put a symlink to `target` in its place."""
    folder.rename(folder.with_name(folder.name + "-moved"))
    os.symlink(target, folder)


def test_a_folder_swapped_for_a_symlink_before_it_is_opened_is_an_escape(
    ws: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"

    def step(walked: tuple[str, ...], name: str) -> None:
        if name == "src":
            swap_for_symlink(ws.root / "src", outside)

    with pytest.raises(WorkspaceEscape):
        Sandbox(on_step=step).write(ws, "src/app.py", b"pwned")
    assert not (outside / "app.py").exists()
    assert (ws.root / "src-moved" / "app.py").read_text() == "print('hello')\n"


def test_a_folder_swapped_after_it_was_opened_is_not_followed_by_name(
    ws: Workspace, tmp_path: Path
) -> None:
    """The walk holds the folder it opened: the write lands there, never outside."""
    outside = tmp_path / "outside"

    def step(walked: tuple[str, ...], name: str) -> None:
        if name == "app.py":
            swap_for_symlink(ws.root / "src", outside)

    rel, size = Sandbox(on_step=step).write(ws, "src/app.py", b"changed")
    assert (rel, size) == ("src/app.py", 7)
    assert (ws.root / "src-moved" / "app.py").read_text() == "changed"
    assert not (outside / "app.py").exists()


@pytest.mark.parametrize("operation", ["read", "write"])
def test_a_file_swapped_for_a_symlink_before_it_is_opened_is_refused(
    ws: Workspace, tmp_path: Path, operation: str
) -> None:
    secret = tmp_path / "outside" / "secret.txt"

    def step(walked: tuple[str, ...], name: str) -> None:
        if name == "app.py":
            (ws.root / "src" / "app.py").unlink()
            os.symlink(secret, ws.root / "src" / "app.py")

    box = Sandbox(on_step=step)
    call = (
        (lambda: box.read(ws, "src/app.py"))
        if operation == "read"
        else (lambda: box.write(ws, "src/app.py", b"pwned"))
    )
    with pytest.raises(ToolError, match="became a symbolic link while being opened"):
        call()
    assert secret.read_text() == "s3cret\n"


# -- odd files and names ------------------------------------------------------------------


async def test_a_fifo_is_refused_instead_of_waited_on(ws: Workspace) -> None:
    os.mkfifo(ws.root / "pipe")
    tools = worker_toolbox()
    read = await tools.call("Read", {"file_path": "pipe"}, ctx(ws))
    write = await tools.call("Write", {"file_path": "pipe", "content": "x"}, ctx(ws))
    assert read.content == "pipe is not a regular file"
    assert write.is_error
    assert "not a regular file" in write.content


@pytest.mark.parametrize("tool", ["Grep", "Glob"])
async def test_a_search_in_a_fifo_says_it_is_no_file_or_folder(ws: Workspace, tool: str) -> None:
    """Grep answered "no matches", as if the FIFO were an empty file."""
    os.mkfifo(ws.root / "pipe")
    tools = worker_toolbox()
    result = await asyncio.wait_for(
        tools.call(tool, {"pattern": "*" if tool == "Glob" else "x", "path": "pipe"}, ctx(ws)), 60
    )
    assert result.is_error
    assert result.content == "pipe is not a regular file or folder"


async def test_a_name_too_long_for_the_system_is_a_tool_error(ws: Workspace) -> None:
    tools: Toolbox = worker_toolbox()
    for tool, args in [
        ("Read", {"file_path": "x" * 5000}),
        ("Write", {"file_path": "x" * 5000, "content": "x"}),
        ("Write", {"file_path": "d" * 300 + "/x", "content": "x"}),
        ("Glob", {"pattern": "*", "path": "x" * 5000}),
    ]:
        result = await tools.call(tool, args, ctx(ws))
        assert result.is_error, tool
        assert "File name too long" in result.content


async def test_a_path_through_more_than_max_depth_folders_is_refused_and_makes_nothing(
    ws: Workspace,
) -> None:
    """Each folder of a path is held open: 10,000 of them held 10,000 descriptors at once."""
    tools, before = worker_toolbox(), snapshot(ws.root)
    deep = "d/" * (MAX_DEPTH + 1) + "x.txt"
    for tool, args in [
        ("Write", {"file_path": deep, "content": "x"}),
        ("Write", {"file_path": "d/" * 10_000 + "x.txt", "content": "x"}),
        ("Read", {"file_path": deep}),
        ("Glob", {"pattern": "*", "path": deep}),
    ]:
        result = await tools.call(tool, args, ctx(ws))
        assert result.is_error, tool
        assert result.content.endswith(f"it goes through more than {MAX_DEPTH} folders"), tool
    assert not (ws.root / "d").exists()
    assert snapshot(ws.root) == before
    ok = "d/" * MAX_DEPTH + "x.txt"  # as deep as may be
    assert not (await tools.call("Write", {"file_path": ok, "content": "x"}, ctx(ws))).is_error
    assert (await tools.call("Read", {"file_path": ok}, ctx(ws))).content == "x"


async def test_glob_and_grep_walk_a_tree_deeper_than_max_depth_and_name_what_they_skipped(
    ws: Workspace,
) -> None:
    """os.fwalk recursed a frame a level: a tree 1,000 deep (made by Bash) failed every
    Glob and Grep of the workspace with a RecursionError."""
    deep, last = "d/" * 1_000, "d/" * MAX_DEPTH + "last.txt"
    made = f"mkdir -p {deep} && echo needle | tee {deep}bottom.txt {last} top.txt"
    subprocess.run(made, shell=True, cwd=ws.root, check=True, stdout=subprocess.DEVNULL)
    try:  # made and removed by the shell: Python's own would recurse too
        fds = len(os.listdir("/proc/self/fd"))
        tools = worker_toolbox()
        skipped = f"[... 1 folder more than {MAX_DEPTH} deep not walked: {'d/' * 100}"
        glob = await tools.call("Glob", {"pattern": "**/*.txt"}, ctx(ws))
        assert not glob.is_error
        assert glob.content.split("\n")[:2] == ["top.txt", last]  # a folder's files first
        assert skipped in glob.content
        for mode in ("files_with_matches", "content", "count"):
            grep = await tools.call("Grep", {"pattern": "needle", "output_mode": mode}, ctx(ws))
            assert not grep.is_error, mode
            assert grep.content.startswith("top.txt"), mode
            assert f"\n{last}" in grep.content and skipped in grep.content, mode
        assert len(os.listdir("/proc/self/fd")) == fds  # every folder it held is closed
    finally:
        subprocess.run(["rm", "-rf", "d"], cwd=ws.root, check=True)


async def test_a_workspace_replaced_under_the_agent_is_a_tool_error(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.root.rename(tmp_path / "elsewhere")
    ws.root.mkdir()
    result = await worker_toolbox().call("Write", {"file_path": "x", "content": "x"}, ctx(ws))
    assert result.is_error
    assert "does not exist or is not a folder" in result.content
    assert not (ws.root / "x").exists()


async def test_edit_keeps_a_large_file_whole_and_bytes_that_are_not_utf8(ws: Workspace) -> None:
    big = ws.root / "big.txt"
    big.write_bytes(b"head\n" + b"x" * 400_000 + b"\n\xff\xfe tail\n")
    result = await worker_toolbox().call(
        "Edit", {"file_path": "big.txt", "old_string": "head", "new_string": "HEAD"}, ctx(ws)
    )
    assert result.content == "replaced 1 occurrence in big.txt"
    assert big.read_bytes() == b"HEAD\n" + b"x" * 400_000 + b"\n\xff\xfe tail\n"


async def test_read_streams_to_a_late_offset_and_says_where_to_read_on(
    ws: Workspace,
) -> None:
    lines = [f"line {i} " + "y" * 90 + "\n" for i in range(1, 10_001)]  # ~1 MB
    (ws.root / "long.txt").write_text("".join(lines))
    tools = worker_toolbox()
    late = await tools.call("Read", {"file_path": "long.txt", "offset": 9_000, "limit": 2}, ctx(ws))
    whole = await tools.call("Read", {"file_path": "long.txt"}, ctx(ws))
    assert late.content == lines[8_999] + lines[9_000]
    assert len(whole.content) < 270_000
    shown = whole.content.count("\n") - 1
    assert whole.content.endswith(
        f"[... truncated: over 262144 bytes; read on with offset={shown + 1}]"
    )
