"""An agent's workspace: the one folder its tools may touch, and the sample repository.

    ws = Workspace("/tmp/work")             # WorkspaceMissing if it is not a folder
    found = ws.locate("src/app.py")         # its folder, open (found.dir_fd), and its name
    ws.resolve("src/app.py")                # an absolute Path inside the workspace
    ws.resolve("../etc/passwd")             # WorkspaceEscape
    path = await prepare_workspace(tmp_path / "repo")   # the sample repository, a git repo

Notes (do not fix without reading this):
1. A path is walked, never resolved by name and then used. `locate` opens the
   workspace (checked to be the same folder, by device and inode, as when the
   `Workspace` was made), then each folder of the path relative to the one
   before, with `O_NOFOLLOW` and `dir_fd`, and hands back the last folder open.
   A symlink met on the way is read once and its target walked the same way
   (`..` in it pops the folder actually held), so a symlink inside the
   workspace works and one pointing out is an escape; swapping a folder for a
   symlink while a walk is under way cannot redirect it: the walk holds the
   folder it opened, not its name. The caller opens the last name relative to
   `dir_fd`, with `O_NOFOLLOW` too. `Bash` runs with the workspace as
   its current folder and is not a path sandbox (see `_tools.py`).
2. Past a folder that does not exist, the rest of the path is taken
   lexically (`new/../x` is `x`), as `Path.resolve()` did; `make_parents`
   creates the missing folders, after the caller's `check` has seen the whole
   path, so a refused path creates nothing.
3. Git in the sample workspace gets a local identity (`user.name`,
   `user.email`) so that commits work on machines with no global identity.
4. Fleet's own folder in a workspace, `.fleet/` (the log by default, the
   agents' transcripts, Claude Code sessions, the patterns' notes), holds a
   `.gitignore` that ignores it all but `settings.json`: without it the
   ship step committed the log and the notes, and the next `fleet run` in
   that folder was refused for uncommitted changes.
5. A path starting `~/` (or `~` alone) is in the home folder, as Claude Code
   reads it: inside the workspace when the workspace is there, an escape
   otherwise. `~name/x` is not another user's home but the workspace's folder
   `~name`, whoever the machine's users are: expanded like a shell, the same
   path was an escape or a workspace path depending on whether a user `name`
   existed.
6. A path through more than `MAX_DEPTH` folders is refused before anything
   is opened past that depth or created: the walk holds each folder open, and
   `Write d/d/.../x` 10,000 deep held 10,000 descriptors at once, the
   process's limit for every agent and the log (or made the tree, which then
   broke Glob and Grep). Glob and Grep do not go deeper either (`_sandbox.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import ToolError, WorkspaceEscape, WorkspaceMissing, shown_path

__all__ = [
    "GIT_IDENTITY",
    "MAX_DEPTH",
    "MAX_SYMLINKS",
    "Located",
    "StepHook",
    "Workspace",
    "git_root",
    "prepare_workspace",
    "sample_repo_path",
]

GIT_IDENTITY = ("fleet", "fleet@localhost")
"""The local git identity `prepare_workspace` sets: (user.name, user.email)."""

MAX_SYMLINKS = 40
"""Symlinks followed in one path before it is refused (Linux's own limit)."""

MAX_DEPTH = 128
"""Folders one path may go through below the workspace (note 6); each is held open."""

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

StepHook = Callable[[tuple[str, ...], str], None]
"""`hook(walked, name)`: called before each name of a path is opened (tests change things here)."""


@dataclass(frozen=True, slots=True)
class Located:
    """A path walked inside the workspace: the folder that holds it, open, and its last name.

    `dir_fd` is owned by the caller (close it). `name` is "" when the path is that
    folder itself. `parts` is the path from the workspace's root as walked, through
    any symlinks, ending with `name`; `missing` says how many of the folders in
    `parts` do not exist (only with `lenient=True`; `dir_fd` is then the deepest
    folder that does).
    """

    dir_fd: int
    name: str
    parts: tuple[str, ...]
    missing: int = 0

    @property
    def rel(self) -> str:
        """The workspace-relative POSIX path ("." for the root)."""
        return "/".join(self.parts) or "."


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _readlink(name: str, dir_fd: int) -> str | None:
    """The target of the symlink `name`, or None if it is not one (or does not exist)."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _mkdir_open(name: str, dir_fd: int) -> int:
    # Made meanwhile by someone else: open it like any folder (O_NOFOLLOW still holds).
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o777, dir_fd=dir_fd)
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


class _Walk:
    """The state of one `locate`: the folders held open from the root down, and what is left."""

    __slots__ = ("fds", "hops", "names", "path", "root", "todo")

    def __init__(self, root: str, root_fd: int, path: str, todo: list[str]) -> None:
        self.root = root
        self.path = path
        self.fds = [root_fd]
        self.names: list[str] = []
        self.todo = todo  # a stack: the next name is last
        self.hops = 0

    def escape(self) -> WorkspaceEscape:
        return WorkspaceEscape(self.path, self.root)

    def up(self) -> None:
        if not self.names:
            raise self.escape()
        os.close(self.fds.pop())
        self.names.pop()

    def down(self, name: str, fd: int) -> None:
        self.fds.append(fd)
        self.names.append(name)

    def check_depth(self, more: int) -> None:
        """Refuse to go `more` folders deeper past `MAX_DEPTH` (note 6)."""
        if len(self.names) + more > MAX_DEPTH:
            raise ToolError(
                f"cannot open {shown_path(self.path)}: it goes through more than {MAX_DEPTH} "
                "folders"
            )

    def follow(self, target: str) -> None:
        """Go on along `target`, the symlink just met in the current folder."""
        self.hops += 1
        if self.hops > MAX_SYMLINKS:
            raise ToolError(
                f"cannot open {shown_path(self.path)}: too many levels of symbolic links"
            )
        if target.startswith("/"):
            prefix = self.root.rstrip("/") + "/"
            if target != self.root and not target.startswith(prefix):
                raise self.escape()
            while self.names:
                self.up()
            target = target[len(self.root) :]
        self.todo.extend(reversed(_split(target)))

    def cancel_dotdots(self) -> bool:
        """Past a missing folder, take the rest lexically (note 2). True if anything changed."""
        rest = list(reversed(self.todo))
        if ".." not in rest:
            return False
        kept: list[str] = []
        for part in rest:
            if part != "..":
                kept.append(part)
            elif kept:
                kept.pop()
            else:
                self.up()
        self.todo[:] = list(reversed(kept))
        return True

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def take(self, name: str) -> Located:
        fd = self.fds.pop()
        return Located(fd, name, (*self.names, name) if name else tuple(self.names))


class Workspace:
    """A folder that confines an agent's tools. The folder must exist."""

    __slots__ = ("_identity", "root")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise WorkspaceMissing(str(path))
        self.root = path.resolve()
        st = os.stat(self.root)
        self._identity = (st.st_dev, st.st_ino)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def check(self) -> None:
        """Raise `WorkspaceMissing` if the folder is gone (deleted while the agent lived)."""
        os.close(self.open_root())

    def open_root(self) -> int:
        """The workspace folder, open. Raises `WorkspaceMissing` if it is gone or was replaced."""
        try:
            fd = os.open(self.root, DIR_FLAGS)
        except OSError as e:
            raise WorkspaceMissing(str(self.root)) from e
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self._identity:
            os.close(fd)
            raise WorkspaceMissing(str(self.root))
        return fd

    def _names(self, path: str) -> list[str]:
        """`path`'s names, last first, relative to the root. Raises `WorkspaceEscape`.

        A NUL byte is refused as what it is (no file name can hold one), not as an escape.
        `~` and `~/...` are the user's home (note 5); `~name` is a name like any other.
        """
        if "\x00" in path:
            shown = shown_path(path.replace("\x00", "\\0"))
            raise ToolError(f"cannot open {shown}: a path cannot hold a NUL byte (\\0)")
        full = os.path.expanduser(path) if path == "~" or path.startswith("~/") else path
        if full.startswith("/"):
            root = str(self.root)
            if full != root and not full.startswith(root.rstrip("/") + "/"):
                raise WorkspaceEscape(path, root)
            full = full[len(root) :]
        return list(reversed(_split(full)))

    def locate(
        self,
        path: str,
        *,
        make_parents: bool = False,
        lenient: bool = False,
        check: Callable[[Sequence[str]], None] | None = None,
        on_step: StepHook | None = None,
    ) -> Located:
        """Walk `path` (relative, or absolute inside the workspace) to its folder (note 1).

        The last name is not opened (a symlink there is followed); the caller opens
        it relative to `dir_fd`. `make_parents` creates missing folders once
        `check(parts)` has passed (it raises to refuse). Raises `WorkspaceEscape`
        (out through `..`, an absolute path or a symlink), and `ToolError` for a
        workspace gone or replaced, a missing folder, a file used as a folder, a
        symlink loop or another OS error. Blocking: call it in a thread.
        """
        names = self._names(path)
        try:
            root_fd = self.open_root()
        except WorkspaceMissing as e:
            raise ToolError(f"cannot open {shown_path(path)}: {e}") from e
        walk = _Walk(str(self.root), root_fd, path, names)
        try:
            return self._walk(walk, make_parents, lenient, check, on_step)
        except OSError as e:
            raise ToolError(f"cannot open {shown_path(path)}: {e.strerror or e}") from e
        finally:
            walk.close()

    def _walk(
        self,
        walk: _Walk,
        make_parents: bool,
        lenient: bool,
        check: Callable[[Sequence[str]], None] | None,
        on_step: StepHook | None,
    ) -> Located:
        todo = walk.todo
        while todo:
            name = todo.pop()
            if name == "..":
                walk.up()
                continue
            if not todo:  # the last name: the caller opens it
                target = _readlink(name, walk.fds[-1])
                if target is None:
                    return walk.take(name)
                walk.follow(target)
                continue
            walk.check_depth(1)
            if on_step is not None:
                on_step(tuple(walk.names), name)
            try:
                walk.down(name, os.open(name, DIR_FLAGS, dir_fd=walk.fds[-1]))
            except FileNotFoundError:
                todo.append(name)
                if walk.cancel_dotdots():
                    continue
                return self._missing(walk, make_parents, lenient, check)
            except NotADirectoryError:
                target = _readlink(name, walk.fds[-1])
                if target is None:
                    folder = "/".join((*walk.names, name))
                    raise ToolError(f"{shown_path(folder)} is not a folder") from None
                walk.follow(target)
        return walk.take("")

    @staticmethod
    def _missing(
        walk: _Walk,
        make_parents: bool,
        lenient: bool,
        check: Callable[[Sequence[str]], None] | None,
    ) -> Located:
        rest = list(reversed(walk.todo))  # no ".." left in it
        walk.todo.clear()
        walk.check_depth(len(rest) - 1)
        if lenient:
            return Located(walk.fds.pop(), rest[-1], (*walk.names, *rest), len(rest) - 1)
        if not make_parents:
            raise ToolError(f"no such folder: {shown_path('/'.join((*walk.names, rest[0])))}")
        if check is not None:
            check((*walk.names, *rest))
        for folder in rest[:-1]:
            walk.down(folder, _mkdir_open(folder, walk.fds[-1]))
        return walk.take(rest[-1])

    def resolve(self, path: str) -> Path:
        """The absolute path of `path` (relative to the workspace, or absolute inside it).

        Symlinks inside the workspace are followed; the path need not exist. Raises
        `WorkspaceEscape` if it leads outside the workspace (through `..`, an
        absolute path elsewhere, or a symlink pointing out). The tools do not use
        it: a path checked here could be swapped before it is used (note 1).
        """
        located = self.locate(path, lenient=True)
        os.close(located.dir_fd)
        return self.root.joinpath(*located.parts)

    def relative(self, path: Path) -> str:
        """`path` (inside the workspace) as a workspace-relative POSIX string ("." for the root)."""
        rel = path.relative_to(self.root).as_posix()
        return rel or "."


FLEET_GITIGNORE = """\
# Made by fleet: its log, transcripts, sessions and notes stay out of git, so a run
# leaves the tree as clean as its agents left it. Hook settings are kept.
*
!settings.json
"""
"""What `keep_out_of_git` writes in `.fleet/`: everything ignored, this file too."""


def keep_out_of_git(folder: Path) -> None:
    """Make `folder` (a `.fleet/`) with a `.gitignore` that ignores what fleet writes there
    (note 4); one already there is left as it is. Blocking: call it in a thread."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    with open(fd, "w") as f:
        f.write(FLEET_GITIGNORE)


def git_root(path: Path) -> Path | None:
    """The top of the git repository `path` is in (itself or a folder above it holding a
    `.git`, a folder or a worktree's file), or None. A workspace may be a subfolder of its
    repository (a package of a monorepo): it is in git all the same. Blocking (stats)."""
    path = path.absolute()
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


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
