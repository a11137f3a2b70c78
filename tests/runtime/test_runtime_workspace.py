"""Workspaces: the sample repository as a git repo, and paths that cannot leave the folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from rt_support import git

from runtime import (
    ToolContext,
    ToolError,
    Workspace,
    WorkspaceEscape,
    WorkspaceMissing,
    prepare_workspace,
    worker_toolbox,
)
from runtime._workspace import GIT_IDENTITY, sample_repo_path


async def test_prepare_workspace_makes_a_git_repository_with_one_commit(tmp_path: Path) -> None:
    repo = await prepare_workspace(tmp_path / "repo")
    log = await git(repo, "log", "--format=%an <%ae> %s")
    name, email = GIT_IDENTITY
    assert log.strip() == f"{name} <{email}> Initial commit of the sample repository"
    assert await git(repo, "status", "--short") == ""
    assert (repo / "textstats" / "counting.py").is_file()


async def test_the_sample_repository_tests_pass_with_the_stdlib_only(tmp_path: Path) -> None:
    repo = await prepare_workspace(tmp_path / "repo", git=False)
    proc = await asyncio.create_subprocess_exec(
        "python3",
        "-m",
        "unittest",
        cwd=repo,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    assert b"OK" in out


async def test_prepare_workspace_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        await prepare_workspace(tmp_path / "repo")
    assert (tmp_path / "repo" / "mine.txt").read_text() == "keep me"


def test_the_sample_repository_ships_a_readme_that_names_functions() -> None:
    readme = (sample_repo_path() / "README.md").read_text()
    assert "count_words" in readme
    assert "summary_report" in readme


def test_a_missing_workspace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceMissing) as info:
        Workspace(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


@pytest.mark.parametrize("path", ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "~/x"])
def test_paths_outside_the_workspace_are_escapes(tmp_path: Path, path: str) -> None:
    ws = Workspace(tmp_path)
    with pytest.raises(WorkspaceEscape) as info:
        ws.resolve(path)
    assert info.value.path == path


def test_a_symlink_pointing_out_is_an_escape_and_so_is_a_path_through_it(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("s3cret")
    os.symlink(outside, root / "link")
    ws = Workspace(root)
    with pytest.raises(WorkspaceEscape):
        ws.resolve("link")
    with pytest.raises(WorkspaceEscape):
        ws.resolve("link/key")


def test_paths_inside_resolve_and_read_back_relative(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    inside = ws.resolve("a/b/../c.txt")
    assert inside == tmp_path.resolve() / "a" / "c.txt"
    assert ws.relative(inside) == "a/c.txt"
    assert ws.resolve(str(tmp_path / "x")) == tmp_path.resolve() / "x"
    assert ws.relative(ws.resolve(".")) == "."


def test_a_symlink_inside_the_workspace_resolves_to_where_it_points(tmp_path: Path) -> None:
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    os.symlink("docs/deep", tmp_path / "shortcut")
    os.symlink(str(tmp_path / "docs"), tmp_path / "absolute")
    ws = Workspace(tmp_path)
    root = tmp_path.resolve()
    assert ws.resolve("shortcut/x.md") == root / "docs" / "deep" / "x.md"
    assert ws.resolve("shortcut/../y.md") == root / "docs" / "y.md"  # `..` of where it points
    assert ws.resolve("absolute/deep") == root / "docs" / "deep"


def test_locate_holds_the_folder_and_names_the_path_walked(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    ws = Workspace(tmp_path)
    found = ws.locate("src/../src/./app.py")
    try:
        assert (found.name, found.parts, found.rel) == ("app.py", ("src", "app.py"), "src/app.py")
        assert os.path.samestat(os.fstat(found.dir_fd), os.stat(tmp_path / "src"))
    finally:
        os.close(found.dir_fd)
    made = ws.locate("new/deeper/file.txt", make_parents=True)
    os.close(made.dir_fd)
    assert (tmp_path / "new" / "deeper").is_dir()
    assert made.rel == "new/deeper/file.txt"


def test_a_path_with_a_nul_byte_is_refused_as_such_not_as_an_escape(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as info:
        Workspace(tmp_path).locate("src/a\x00b.py")
    assert not isinstance(info.value, WorkspaceEscape)
    assert str(info.value) == r"cannot open src/a\0b.py: a path cannot hold a NUL byte (\0)"


def test_a_symlink_loop_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(ToolError, match="too many levels of symbolic links"):
        Workspace(tmp_path).locate("a/x")


async def test_a_leading_tilde_is_the_home_folder_and_tilde_name_a_folder_of_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`~/x` is in the home folder (as Claude Code reads it); `~root/x` is the workspace's
    folder `~root` whoever the machine's users are: it was /root/x, an escape."""
    home = tmp_path / "home"
    root = home / "ws"
    (root / "~nosuchuser").mkdir(parents=True)
    (root / "~nosuchuser" / "x.txt").write_text("no user\n")
    monkeypatch.setenv("HOME", str(home))
    ws = Workspace(root)
    assert ws.resolve("~/ws/a.txt") == root.resolve() / "a.txt"
    for path in ("~", "~/", "~/x", "~/ws/../x"):
        with pytest.raises(WorkspaceEscape):
            ws.resolve(path)
    assert ws.resolve("~root/x") == root.resolve() / "~root" / "x"
    assert ws.resolve("~nosuchuser/x.txt") == root.resolve() / "~nosuchuser" / "x.txt"
    tools, ctx = worker_toolbox(), ToolContext(workspace=ws, agent_id="a1")
    wrote = await tools.call("Write", {"file_path": "~root/notes.txt", "content": "n"}, ctx)
    assert not wrote.is_error, wrote.content
    assert (root / "~root" / "notes.txt").read_text() == "n"
    read = await tools.call("Read", {"file_path": "~nosuchuser/x.txt"}, ctx)
    assert read.content == "no user\n"
    monkeypatch.setenv("HOME", str(root))  # the workspace is the home folder
    assert Workspace(root).resolve("~") == root.resolve()
    assert Workspace(root).resolve("~/a.txt") == root.resolve() / "a.txt"
