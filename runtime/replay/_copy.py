"""A fresh copy of a recorded run's workspace, for its re-execution.

    copy = await copy_workspace(Path("repo"), Path("replay-1a2b"), git_head="3f2c...")

With a recorded `git_head` it is a `git clone` checked out at that commit (on
the branch the source is on), with the source's git identity; without one,
a plain copy of the folder as it is now.

Notes (do not fix without reading this):
1. The clone's `origin` remote is removed: a tool that pushes must not reach
   the repository the run was recorded in.
2. A workspace may be a subfolder of its repository (a package of a
   monorepo): the repository is cloned whole at `dest`, and the copy returned
   is the same subfolder of the clone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from .._workspace import git_root
from .errors import WorkspaceUnavailable

__all__ = ["copy_workspace"]


async def _git(cwd: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def _checked(cwd: Path, *args: str) -> str:
    code, out = await _git(cwd, *args)
    if code != 0:
        raise WorkspaceUnavailable(str(cwd), f"git {' '.join(args)} failed: {out}")
    return out


def _empty_or_absent(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


async def copy_workspace(source: Path, dest: Path, git_head: str | None) -> Path:
    """A fresh copy of `source` at `dest`: a clone at `git_head`, else a copy of the folder.

    Returns the copy's absolute path (a subfolder of `dest` when `source` is one of its
    repository, note 2). Raises `WorkspaceUnavailable` when
    `source` is missing, is not a git repository although a head was
    recorded, lacks that commit, or `dest` is not empty.
    """
    source, dest = await asyncio.to_thread(source.resolve), await asyncio.to_thread(dest.resolve)
    if not await asyncio.to_thread(source.is_dir):
        raise WorkspaceUnavailable(
            str(source), "it does not exist (give the repository to copy with --source)"
        )
    if not await asyncio.to_thread(_empty_or_absent, dest):
        raise WorkspaceUnavailable(str(dest), "the destination exists and is not empty")
    if git_head is None:
        await asyncio.to_thread(shutil.copytree, source, dest, symlinks=True, dirs_exist_ok=True)
        return await asyncio.to_thread(dest.resolve)
    root = await asyncio.to_thread(git_root, source)
    if root is None:
        raise WorkspaceUnavailable(
            str(source), f"the run was recorded at commit {git_head[:12]} but it is not a git "
            "repository now",
        )  # fmt: skip
    code, _ = await _git(source, "cat-file", "-e", f"{git_head}^{{commit}}")
    if code != 0:
        raise WorkspaceUnavailable(str(source), f"it has no commit {git_head[:12]}")
    await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
    # The whole repository is cloned; a workspace that is a subfolder of it (module note 2)
    # is that subfolder of the clone.
    await _checked(dest.parent, "clone", "--quiet", "--no-checkout", str(root), str(dest))
    code, branch = await _git(source, "symbolic-ref", "--quiet", "--short", "HEAD")
    await _checked(dest, "checkout", "--quiet", "-B", branch if code == 0 else "main", git_head)
    await _checked(dest, "remote", "remove", "origin")  # module note 1
    for key in ("user.name", "user.email"):
        code, value = await _git(source, "config", key)
        if code == 0 and value:
            await _checked(dest, "config", key, value)
    prefix = source.relative_to(root)  # both resolved
    inside = dest / prefix
    if not await asyncio.to_thread(inside.is_dir):
        raise WorkspaceUnavailable(str(source), f"commit {git_head[:12]} has no folder {prefix}")
    return await asyncio.to_thread(inside.resolve)
