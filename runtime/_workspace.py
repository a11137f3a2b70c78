"""An agent's workspace: the one folder its tools may touch, and the sample repository.

    ws = Workspace("/tmp/work")             # WorkspaceMissing if it is not a folder
    ws.resolve("src/app.py")                # an absolute Path inside the workspace
    ws.resolve("../etc/passwd")             # WorkspaceEscape
    path = await prepare_workspace(tmp_path / "repo")   # the sample repository, a git repo

Notes (do not fix without reading this):
1. A path is resolved (symlinks followed, `..` collapsed) before it is checked,
   so a symlink inside the workspace that points outside is an escape, and so
   is a path through one. The check is made when a tool runs; a link created
   later by `run_command` is caught by the next tool that resolves through it.
   `run_command` itself runs with the workspace as its current folder and is
   not a sandbox (see `_tools.py`).
2. Git in the sample workspace gets a local identity (`user.name`,
   `user.email`) so that commits work on machines with no global identity.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from importlib import resources
from pathlib import Path

from .errors import WorkspaceEscape, WorkspaceMissing

__all__ = ["GIT_IDENTITY", "Workspace", "prepare_workspace", "sample_repo_path"]

GIT_IDENTITY = ("fleet", "fleet@localhost")
"""The local git identity `prepare_workspace` sets: (user.name, user.email)."""


class Workspace:
    """A folder that confines an agent's tools. The folder must exist."""

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise WorkspaceMissing(str(path))
        self.root = path.resolve()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def check(self) -> None:
        """Raise `WorkspaceMissing` if the folder is gone (deleted while the agent lived)."""
        if not self.root.is_dir():
            raise WorkspaceMissing(str(self.root))

    def resolve(self, path: str) -> Path:
        """The absolute path of `path` (relative to the workspace, or absolute inside it).

        Raises `WorkspaceEscape` if it resolves outside the workspace (through
        `..`, an absolute path elsewhere, or a symlink pointing out).
        """
        if "\x00" in path:
            raise WorkspaceEscape(path.replace("\x00", "\\0"), str(self.root))
        candidate = Path(path).expanduser() if path.startswith("~") else Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise WorkspaceEscape(path, str(self.root)) from e
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise WorkspaceEscape(path, str(self.root))
        return resolved

    def relative(self, path: Path) -> str:
        """`path` (inside the workspace) as a workspace-relative POSIX string ("." for the root)."""
        rel = path.relative_to(self.root).as_posix()
        return rel or "."


def sample_repo_path() -> Path:
    """The sample repository shipped with fleet (package data, read-only)."""
    return Path(str(resources.files("runtime").joinpath("sample_repo")))


async def _git(cwd: Path, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {out.decode(errors='replace')}")


def _copy_sample(dest: Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty")
    shutil.copytree(
        sample_repo_path(),
        dest,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


async def prepare_workspace(dest: str | os.PathLike[str], *, git: bool = True) -> Path:
    """Copy the sample repository to `dest` and make it a git repository with one commit.

    `dest` must not exist or be an empty folder. Git gets a local identity
    (`GIT_IDENTITY`) so commits work without a global one. Returns the absolute
    path. Raises `FileExistsError` for a non-empty `dest`, `RuntimeError` if git fails.
    """
    target = await asyncio.to_thread(lambda: Path(dest).expanduser().resolve())
    await asyncio.to_thread(_copy_sample, target)
    if git:
        name, email = GIT_IDENTITY
        await _git(target, "init", "-q", "-b", "main")
        await _git(target, "config", "user.name", name)
        await _git(target, "config", "user.email", email)
        await _git(target, "config", "commit.gpgsign", "false")
        await _git(target, "add", "-A")
        await _git(target, "commit", "-q", "-m", "Initial commit of the sample repository")
    return target
