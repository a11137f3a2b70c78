"""What an agent's file tools may do: read, write, edit and walk files inside the workspace.

    box = Sandbox(log_path=".fleet/fleet.db")       # one per toolbox (per agent)
    rel, text, more = box.read(ws, "src/app.py")      # blocking: call these in a thread
    rel, size = box.write(ws, "notes/plan.md", b"...")  # WriteRefused / WorkspaceEscape
    for entry in box.walk(ws, "."): ...               # the files under a folder, as ripgrep walks

Every path goes through `Workspace.locate` (no check-then-use race, see
`_workspace.py`), and every file is opened relative to its folder with
`O_NOFOLLOW` and `O_NONBLOCK` (a FIFO or a device is refused, not waited on).
Nothing here knows a tool's name: the tools in `_tools.py` call it.

Notes (do not fix without reading this):
1. Writes and edits are refused (`WriteRefused`, which the model sees as a tool
   error) for any path with a `.git` folder in it (git changes `.git`, through
   `Bash`; reads stay allowed), a `.fleet` folder in it except under
   `.fleet/notes/` (the patterns' shared notes: the log, its hook settings and
   anything else fleet keeps there are off limits), `.claude/settings*.json`
   (hooks that run commands), and the event log's own files (`log_path`, its
   `-wal`, `-shm` and `-journal`) wherever they are: matched by the folder's
   device and inode and the file's name, and by the file's own identity, so a
   symlink or a hard link to the log inside the workspace is caught too. Names
   compare case-insensitively (`.GIT` is `.git` on macOS's disks).
2. A file with more than one name (`st_nlink > 1`) that this sandbox did not
   create is not written: its other names may be outside the workspace (a hard
   link made by `Bash`, or a package store's files). Files the agent
   created keep working after it links them.
3. A write keeps the file's inode (truncate and write in place), as the shell's
   `>` does, and an edit reads and writes through one descriptor: what was
   checked is what is changed.
4. Skipping to a read's `offset` reads every byte before it: a huge (or
   sparse: `truncate -s 1T`) file took a thread for as long as that takes
   (an hour for 1 TB), past a cancel. The caller's `stopping` ends it.
5. `walk` keeps a stack of its own, one open folder a level, and enters no
   folder more than `MAX_DEPTH` below the workspace (`_workspace.py` note 6),
   naming those it skipped: `os.fwalk` recursed, one Python frame a level,
   and a tree 1,000 deep (`mkdir -p` in `Bash`, or a `Write`) made every
   Glob and Grep of the workspace fail with a RecursionError.
6. A file with a NUL byte in its first `BINARY_SNIFF` bytes is binary, as
   Grep has it (`_search.py`): `read` refuses it, having read no more, where
   it handed up to 256 KiB of NUL and control bytes to the model as text.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shlex
import stat
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._workspace import DIR_FLAGS, MAX_DEPTH, Located, StepHook, Workspace
from .errors import ToolError, WorkspaceEscape, WriteRefused, shown_path

__all__ = [
    "BINARY_SNIFF",
    "MAX_EDIT_BYTES",
    "MAX_READ_BYTES",
    "Sandbox",
    "WalkEntry",
    "write_refusal",
]

MAX_READ_BYTES = 256 * 1024
"""The most of a file one read returns."""

MAX_EDIT_BYTES = 16 * 1024 * 1024
"""The largest file an edit rewrites (it is held in memory twice)."""

BINARY_SNIFF = 8192
"""A file with a NUL byte in its first this many bytes is binary (Read refuses, Grep skips it)."""

SKIP_DIRS = frozenset({"__pycache__", "node_modules"})
_OPEN = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_LOG_SUFFIXES = ("", "-wal", "-shm", "-journal")


def write_refusal(parts: Sequence[str]) -> str | None:
    """Why the workspace path `parts` (folders then file name) may not be written, or None."""
    folded = [p.casefold() for p in parts]
    for i, part in enumerate(folded):
        if part == ".git":
            return ".git belongs to git: change it with git commands (Bash), not file tools"
        if part == ".fleet" and not (i + 2 < len(folded) and folded[i + 1] == "notes"):
            return (
                ".fleet holds fleet's own files (its log, its hook settings); agents may write "
                "only under .fleet/notes/"
            )
    if (
        len(folded) >= 2
        and folded[-2] == ".claude"
        and fnmatch.fnmatchcase(folded[-1], "settings*.json")
    ):
        return f"{parts[-1]} configures hooks that run commands"
    return None


@dataclass(frozen=True, slots=True)
class WalkEntry:
    """A file met by `Sandbox.walk`: its workspace path, and its folder (open while yielded)."""

    rel: str
    dir_fd: int
    name: str


def _oserror(verb: str, rel: str, e: OSError) -> ToolError:
    if e.errno == errno.ELOOP:
        return ToolError(
            f"cannot {verb} {shown_path(rel)}: it became a symbolic link while being opened"
        )
    if e.errno == errno.ENXIO:
        return ToolError(f"cannot {verb} {shown_path(rel)}: not a regular file")
    return ToolError(f"cannot {verb} {shown_path(rel)}: {e.strerror or e}")


def _not_a_file(rel: str, st: os.stat_result) -> ToolError:
    return ToolError(
        f"{shown_path(rel)} is a folder"
        if stat.S_ISDIR(st.st_mode)
        else f"{shown_path(rel)} is not a regular file"
    )


def _file_path(path: str) -> str:
    """`path`, unless it ends with `/` (it names a folder: `Write notes/` made a file
    `notes`, `Read a.py/` read `a.py`). Raises `ToolError`, before anything is walked."""
    if path.endswith(("/", "/.")):
        raise ToolError(f"{shown_path(path)} ends with /: it names a folder, not a file")
    return path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _listing(dir_fd: int) -> tuple[list[str], list[str]]:
    """The folders and the files of the open folder `dir_fd`, sorted, those a walk skips left
    out; a symlink to a folder is neither (it is not entered, as ripgrep does)."""
    dirs: list[str] = []
    files: list[str] = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink() and not name.startswith(".") and name not in SKIP_DIRS:
                    dirs.append(name)
            elif not name.startswith(".") or name == ".gitignore":
                files.append(name)
    return sorted(dirs), sorted(files)


class Sandbox:
    """The file operations of one agent's tools (notes 1-3). Its methods block: use a thread.

    Args:
        log_path: the event log's file, when it is one (its -wal, -shm and
            -journal are protected with it); relative to the current folder.
        on_step: called as `on_step(walked, name)` before each name of a path is
            opened; tests use it to change the tree between two steps.
    """

    __slots__ = ("_created", "_log_dir", "_log_names", "on_step")

    def __init__(
        self, *, log_path: str | os.PathLike[str] | None = None, on_step: StepHook | None = None
    ) -> None:
        self.on_step = on_step
        self._created: set[tuple[int, int]] = set()
        self._log_dir: str | None = None
        self._log_names: frozenset[str] = frozenset()
        if log_path is not None:
            path = os.path.abspath(os.fspath(log_path))
            self._log_dir, base = os.path.split(path)
            self._log_names = frozenset((base + s).casefold() for s in _LOG_SUFFIXES)

    @property
    def log_files(self) -> tuple[Path, ...]:
        """The log's files this sandbox refuses to write (empty without `log_path`)."""
        if self._log_dir is None:
            return ()
        return tuple(Path(self._log_dir, n) for n in sorted(self._log_names))

    # -- checks -----------------------------------------------------------------------------

    def check_path(self, parts: Sequence[str]) -> None:
        """Raise `WriteRefused` if the workspace path `parts` is protected (note 1)."""
        reason = write_refusal(parts)
        if reason is not None:
            raise WriteRefused("/".join(parts), reason)

    def _is_log_name(self, located: Located) -> bool:
        if self._log_dir is None or located.name.casefold() not in self._log_names:
            return False
        try:
            here, there = os.fstat(located.dir_fd), os.stat(self._log_dir)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def _is_log_file(self, st: os.stat_result) -> bool:
        for path in self.log_files:
            try:
                log = os.stat(path)
            except OSError:
                continue
            if (log.st_dev, log.st_ino) == (st.st_dev, st.st_ino):
                return True
        return False

    def _check_opened(self, fd: int, rel: str, *, created: bool) -> os.stat_result:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_a_file(rel, st)
        key = (st.st_dev, st.st_ino)
        if created:
            self._created.add(key)
        if self._is_log_file(st):
            raise WriteRefused(rel, "it is fleet's event log")
        if st.st_nlink > 1 and key not in self._created:
            raise WriteRefused(
                rel,
                f"it is a hard link ({st.st_nlink} names) to a file this agent did not create; "
                "its other names may be outside the workspace",
            )
        return st

    def _locate_for_write(self, ws: Workspace, path: str, *, make_parents: bool) -> Located:
        located = ws.locate(
            _file_path(path), make_parents=make_parents, check=self.check_path, on_step=self.on_step
        )
        try:
            if not located.name:
                raise ToolError(f"{shown_path(located.rel)} is a folder")
            self.check_path(located.parts)
            if self._is_log_name(located):
                raise WriteRefused(located.rel, "it is fleet's event log")
        except BaseException:
            os.close(located.dir_fd)
            raise
        if self.on_step is not None:
            self.on_step(located.parts[:-1], located.name)
        return located

    # -- reading ----------------------------------------------------------------------------

    def open_file(self, ws: Workspace, path: str) -> tuple[int, str]:
        """`path` opened for reading, and its workspace path. Raises `ToolError`."""
        located = ws.locate(_file_path(path), on_step=self.on_step)
        rel = located.rel
        try:
            if not located.name:
                raise ToolError(f"{shown_path(rel)} is a folder")
            if self.on_step is not None:
                self.on_step(located.parts[:-1], located.name)
            fd = os.open(located.name, os.O_RDONLY | _OPEN, dir_fd=located.dir_fd)
        except FileNotFoundError:
            raise ToolError(f"no such file: {shown_path(rel)}") from None
        except OSError as e:
            raise _oserror("read", rel, e) from e
        finally:
            os.close(located.dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _not_a_file(rel, st)
        except BaseException:
            os.close(fd)
            raise
        return fd, rel

    def read(
        self,
        ws: Workspace,
        path: str,
        *,
        offset: int = 1,
        limit: int | None = None,
        max_bytes: int = MAX_READ_BYTES,
        stopping: Callable[[], str | None] | None = None,
    ) -> tuple[str, str, int | None]:
        """Lines `offset`.. (1-based, at most `limit`) of a text file, read as a stream.

        Returns (workspace path, text, next line) where next line is None unless
        `max_bytes` cut the text short: then it is the line to read on from.
        `stopping()` is asked as the lines before `offset` are skipped: when it
        names a reason (a deadline, a cancel), `ToolError` says so (note 4). A
        binary file (note 6) is a `ToolError`, told from its first `BINARY_SNIFF` bytes.
        """
        fd, rel = self.open_file(ws, path)
        with open(fd, "rb") as f:
            if b"\x00" in os.pread(fd, BINARY_SNIFF, 0):
                raise ToolError(
                    f"{shown_path(rel)} is a binary file ({os.fstat(fd).st_size} bytes): Read "
                    f"shows text; use Bash, e.g. `xxd {shown_path(shlex.quote(rel))} | head`, "
                    "to look inside"
                )
            line = 1
            chunks = 0
            while line < offset:
                chunks += 1
                if stopping is not None and chunks % 256 == 0 and (why := stopping()):
                    raise ToolError(
                        f"stopped reading {shown_path(rel)} before line {offset}: {why}"
                    )
                chunk = f.readline(65536)
                if not chunk:
                    return rel, "", None
                line += chunk.endswith(b"\n")
            kept = bytearray()
            taken = 0
            while limit is None or taken < limit:
                if len(kept) >= max_bytes:
                    if f.peek(1):
                        return rel, kept.decode("utf-8", errors="replace"), offset + taken
                    break
                chunk = f.readline(max_bytes - len(kept))
                if not chunk:
                    break
                kept += chunk
                taken += chunk.endswith(b"\n")
        return rel, kept.decode("utf-8", errors="replace"), None

    def current(self, ws: Workspace, path: str) -> tuple[str, bytes | None]:
        """What the file `path` holds now, whole, and its workspace path; None if it does not
        exist (nor its folder). For a write's before and after hashes (`_interrupted.py`).

        Opened as every read is (never following the last name, never waiting on a
        FIFO). Raises `ToolError` for what a write could not be checked against: not
        a regular file, larger than `MAX_EDIT_BYTES`, unreadable; `WorkspaceEscape`.
        """
        located = ws.locate(_file_path(path), lenient=True, on_step=self.on_step)
        rel = located.rel
        try:
            if not located.name:
                raise ToolError(f"{shown_path(rel)} is a folder")
            if located.missing:
                return rel, None
            fd = os.open(located.name, os.O_RDONLY | _OPEN, dir_fd=located.dir_fd)
        except FileNotFoundError:
            return rel, None
        except OSError as e:
            raise _oserror("read", rel, e) from e
        finally:
            os.close(located.dir_fd)
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _not_a_file(rel, st)
            if st.st_size > MAX_EDIT_BYTES:
                raise ToolError(
                    f"{shown_path(rel)} is {st.st_size} bytes, over the {MAX_EDIT_BYTES} checked"
                )
            try:
                data = f.read(MAX_EDIT_BYTES + 1)
            except OSError as e:
                raise _oserror("read", rel, e) from e
        if len(data) > MAX_EDIT_BYTES:  # it grew while being read
            raise ToolError(f"{shown_path(rel)} is over the {MAX_EDIT_BYTES} bytes checked")
        return rel, data

    # -- writing ----------------------------------------------------------------------------

    def write(self, ws: Workspace, path: str, data: bytes) -> tuple[str, int]:
        """Create or overwrite `path` with `data` (folders are made). Returns (path, size).

        Raises `WriteRefused` (notes 1, 2), `WorkspaceEscape`, `ToolError`.
        """
        located = self._locate_for_write(ws, path, make_parents=True)
        rel = located.rel
        try:
            flags = os.O_WRONLY | _OPEN
            try:
                new = flags | os.O_CREAT | os.O_EXCL
                fd = os.open(located.name, new, 0o666, dir_fd=located.dir_fd)
                created = True
            except FileExistsError:
                fd = os.open(located.name, flags, dir_fd=located.dir_fd)
                created = False
        except OSError as e:
            raise _oserror("write", rel, e) from e
        finally:
            os.close(located.dir_fd)
        try:
            self._check_opened(fd, rel, created=created)
            os.ftruncate(fd, 0)
            _write_all(fd, data)
        except OSError as e:
            raise _oserror("write", rel, e) from e
        finally:
            os.close(fd)
        return rel, len(data)

    def edit(self, ws: Workspace, path: str, change: Callable[[str, str], str]) -> str:
        """Rewrite the text file `path` as `change(text, rel)` through one descriptor; its path.

        Bytes that are not UTF-8 are kept as they are. `change` raises
        `ToolError` to leave the file untouched. Raises `WriteRefused`,
        `WorkspaceEscape`, `ToolError` (no such file, too large).
        """
        located = self._locate_for_write(ws, path, make_parents=False)
        rel = located.rel
        try:
            fd = os.open(located.name, os.O_RDWR | _OPEN, dir_fd=located.dir_fd)
        except FileNotFoundError:
            raise ToolError(f"no such file: {shown_path(rel)}") from None
        except OSError as e:
            raise _oserror("edit", rel, e) from e
        finally:
            os.close(located.dir_fd)
        try:
            st = self._check_opened(fd, rel, created=False)
            if st.st_size > MAX_EDIT_BYTES:
                raise ToolError(
                    f"{shown_path(rel)} is {st.st_size} bytes, over the {MAX_EDIT_BYTES} an edit "
                    "rewrites"
                )
            with open(fd, "rb", closefd=False) as f:
                text = f.read().decode("utf-8", errors="surrogateescape")
            data = change(text, rel).encode("utf-8", errors="surrogateescape")
            os.lseek(fd, 0, os.SEEK_SET)
            _write_all(fd, data)
            os.ftruncate(fd, len(data))
        except OSError as e:
            raise _oserror("edit", rel, e) from e
        finally:
            os.close(fd)
        return rel

    # -- walking ----------------------------------------------------------------------------

    def walk(
        self, ws: Workspace, path: str, *, too_deep: list[str] | None = None
    ) -> Generator[WalkEntry, None, None]:
        """The files under the folder `path` (or that one file), sorted, as ripgrep walks.

        Hidden files and folders (but `.gitignore`), `__pycache__` and
        `node_modules` are skipped below `path`, and so are symlinks that lead out
        of the workspace; symlinked folders are not entered, nor folders more than
        `MAX_DEPTH` below the workspace (note 5): those are added to `too_deep`.
        Each entry's `dir_fd` is open only until the next one is asked for. Raises
        `ToolError` for a missing `path`, or one that is neither a regular file nor
        a folder (a FIFO, a device, a socket). A generator: close it when done.
        """
        located = ws.locate(path, on_step=self.on_step)
        try:
            if not located.name:
                top = os.dup(located.dir_fd)
            else:
                try:
                    top = os.open(located.name, DIR_FLAGS, dir_fd=located.dir_fd)
                except NotADirectoryError:
                    # Never opened unless a regular file (a FIFO was searched as "no matches").
                    st = os.stat(located.name, dir_fd=located.dir_fd, follow_symlinks=False)
                    if not stat.S_ISREG(st.st_mode):
                        raise ToolError(
                            f"{shown_path(located.rel)} is not a regular file or folder"
                        ) from None
                    yield WalkEntry(located.rel, located.dir_fd, located.name)
                    return
                except FileNotFoundError:
                    raise ToolError(f"no such file or folder: {shown_path(located.rel)}") from None
            try:
                yield from self._walk_folder(ws, top, located.rel, too_deep)
            finally:
                os.close(top)
        finally:
            os.close(located.dir_fd)

    def _walk_folder(
        self, ws: Workspace, top: int, top_rel: str, too_deep: list[str] | None
    ) -> Iterator[WalkEntry]:
        """Depth first, folders in name order, each one's files before its folders (note 5)."""
        prefix = "" if top_rel == "." else top_rel + "/"
        depth = prefix.count("/")
        dirs, files = _listing(top)
        stack = [(prefix, top, iter(dirs))]  # (path, fd, folders not yet entered) per level
        try:
            yield from self._files(ws, top, prefix, files)
            while stack:
                base, fd, rest = stack[-1]
                name = next(rest, None)
                if name is None:
                    stack.pop()
                    if fd != top:
                        os.close(fd)
                    continue
                if depth + len(stack) > MAX_DEPTH:
                    if too_deep is not None:
                        too_deep.append(base + name)
                    continue
                try:  # O_NOFOLLOW: a symlinked folder is not entered
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # gone, unreadable or a symlink: skipped, as os.fwalk did
                try:
                    dirs, files = _listing(child)
                except OSError:
                    os.close(child)
                    continue
                stack.append((base + name + "/", child, iter(dirs)))
                yield from self._files(ws, child, base + name + "/", files)
        finally:
            for _, fd, _ in stack:
                if fd != top:
                    os.close(fd)

    def _files(
        self, ws: Workspace, dir_fd: int, base: str, files: list[str]
    ) -> Iterator[WalkEntry]:
        for name in files:
            rel = base + name
            if not self._escapes(ws, dir_fd, name, rel):
                yield WalkEntry(rel, dir_fd, name)

    @staticmethod
    def _escapes(ws: Workspace, dir_fd: int, name: str, rel: str) -> bool:
        """True for a symlink that leads out of the workspace (or nowhere it can go)."""
        try:
            if not stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                return False
            located = ws.locate(rel, lenient=True)
        except (OSError, ToolError):
            return True
        os.close(located.dir_fd)
        return False

    def open_entry(self, ws: Workspace, entry: WalkEntry) -> int | None:
        """`entry` opened for reading, or None if it is not a regular file (or cannot be read)."""
        try:
            fd = os.open(entry.name, os.O_RDONLY | _OPEN, dir_fd=entry.dir_fd)
        except OSError as e:
            if e.errno != errno.ELOOP:
                return None
            try:  # a symlink inside the workspace: walk it from the root
                return self.open_file(ws, entry.rel)[0]
            except (ToolError, WorkspaceEscape):
                return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd
