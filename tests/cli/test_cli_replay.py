"""`fleet replay`, `fleet export` and `fleet import` as a user types them (in process).

The log is made once per module by `fleet demo` itself (scout-plan-build on the
sample repository, through the offline simulator); a test that writes to a log
works on a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import io
import json
import os
import pty
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from events import EventFilter, SQLiteEventStore
from projections import ProjectionRunner


def fleet(*args: str) -> tuple[int, str, str]:
    """Run `fleet ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


async def _run_ids(db: Path) -> list[str]:
    async with SQLiteEventStore(db) as store:
        found = await store.read_all(where=EventFilter.of(types=["RunStarted"]))
    return [e.data.run_id for e in found]  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A log holding one `fleet demo` run (do not write to it: copy it), and the run's id."""
    base = tmp_path_factory.mktemp("demo")
    db = base / "fleet.db"
    code, out, err = fleet("demo", "--workspace", str(base / "ws"), "--db", str(db),
                           "--latency", "0", "--json")  # fmt: skip
    assert code == 0, err
    return db, json.loads(out)["run_id"]


@pytest.fixture
def db(demo: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the demo log."""
    target = tmp_path / "fleet.db"
    shutil.copyfile(demo[0], target)
    return target


def test_replay_prints_the_run_timeline(demo: tuple[Path, str]) -> None:
    log, run_id = demo
    code, out, _ = fleet("replay", run_id, "--db", str(log))

    assert code == 0
    assert run_id in out
    for text in ("scout-1", "step 1", "Grep", "Read", "sleeps until", "run completed"):
        assert text in out
    assert f"fleet replay {run_id} --at POSITION" in " ".join(out.split())


def test_replay_json_is_the_timeline(demo: tuple[Path, str]) -> None:
    log, run_id = demo
    code, out, _ = fleet("replay", run_id, "--db", str(log), "--json")

    assert code == 0
    timeline = json.loads(out)
    assert timeline["run_id"] == run_id
    assert {e["kind"] for e in timeline["entries"]} >= {"run", "agent", "step", "tool", "wait"}


def test_replay_at_a_position_prints_the_view_as_it_was_then(demo: tuple[Path, str]) -> None:
    log, run_id = demo

    async def expected() -> Any:
        async with SQLiteEventStore(log) as store, ProjectionRunner(store) as runner:
            return await runner.view_at("board", 20)

    code, out, _ = fleet("replay", run_id, "--db", str(log), "--at", "20", "--view", "board",
                         "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out) == asyncio.run(expected())

    code, out, _ = fleet("replay", run_id, "--db", str(log), "--at", "20")
    assert code == 0
    assert "agents as of position 20" in out
    assert "scout-1" in out


def test_replay_at_a_position_outside_the_log_is_refused(demo: tuple[Path, str]) -> None:
    log, run_id = demo
    code, _, err = fleet("replay", run_id, "--db", str(log), "--at", "99999")
    assert code == 1
    assert "position 99999 is not in the log" in err
    # Not a position at all: a usage error, as `fleet agents --at` gives.
    for bad in ("-1", "x"):
        with pytest.raises(SystemExit) as exit_info:
            fleet("replay", run_id, "--db", str(log), "--at", bad)
        assert exit_info.value.code == 2


def test_export_then_import_into_another_log(demo: tuple[Path, str], tmp_path: Path) -> None:
    log, run_id = demo
    exported, other = tmp_path / "run.jsonl", tmp_path / "other.db"

    code, out, err = fleet("export", run_id, "--db", str(log), "-o", str(exported))
    assert code == 0, err
    assert f"exported run {run_id}" in out

    code, out, err = fleet("import", str(exported), "--db", str(other), "--json")
    assert code == 0, err
    imported = json.loads(out)
    assert imported["run_id"] == run_id
    assert imported["run"]["status"] == "completed"
    assert fleet("replay", run_id, "--db", str(other), "--json")[0] == 0

    code, _, err = fleet("import", str(exported), "--db", str(other))
    assert code == 1
    assert "exist in this log already" in err
    assert asyncio.run(_run_ids(other)) == [run_id]

    # The command it says to run next works when pasted: the log quoted for the shell.
    third = tmp_path / "my logs" / "a&b.db"
    code, out, err = fleet("import", str(exported), "--db", str(third))
    assert code == 0, err
    hint = next(line for line in out.splitlines() if line.startswith("see it with "))
    assert shlex.split(hint.removeprefix("see it with ")) == [
        "fleet", "replay", run_id, "--db", str(third)
    ]  # fmt: skip


def _reseal(lines: list[bytes]) -> bytes:
    """An export's header and event lines with a trailer computed over them: a forger's file,
    which passes the checksum, so that only the checks of its contents can refuse it."""
    events = [json.loads(line) for line in lines[1:]]
    streams: dict[str, int] = {}
    for event in events:
        streams[event["stream_id"]] = streams.get(event["stream_id"], 0) + 1
    digest = hashlib.sha256(b"".join(lines)).hexdigest()
    trailer = {"end": "fleet-run", "events": len(events), "streams": streams, "sha256": digest}
    return b"".join(lines) + json.dumps(trailer).encode() + b"\n"


def _another_run(demo: tuple[Path, str], tmp_path: Path, run_id: str = "second") -> list[bytes]:
    """The demo run's export (header and events, no trailer) renamed `run_id` throughout, its
    agents renamed too: a run the demo log does not hold, that `_reseal` makes a file it
    would take."""
    log, demo_id = demo
    exported = tmp_path / "demo.jsonl"
    assert fleet("export", demo_id, "--db", str(log), "-o", str(exported))[0] == 0
    lines = exported.read_bytes().splitlines(keepends=True)[:-1]
    names = {demo_id: run_id}
    for line in lines[1:]:
        event = json.loads(line)
        if event["type"] == "AgentCreated":
            names[event["data"]["agent_id"]] = event["data"]["agent_id"] + "-again"
    for old, new in names.items():
        lines = [line.replace(old.encode(), json.dumps(new)[1:-1].encode()) for line in lines]
    return lines


def _edited(lines: list[bytes], number: int, **changes: Any) -> list[bytes]:
    """`lines` with the keys of the JSON object on line `number` (from 1) changed."""
    value = json.loads(lines[number - 1])
    value.update(changes)
    return [*lines[: number - 1], json.dumps(value).encode() + b"\n", *lines[number:]]


def _state(db: Path) -> tuple[int, list[str]]:
    """The log's head and the ids of its runs: what an import would change."""
    return asyncio.run(_head(db)), asyncio.run(_run_ids(db))


def _refused(db: Path, export: Path, data: bytes) -> str:
    """Import `data` (written to `export`) into `db`: it must be refused with one line on
    stderr, nothing on stdout, and the log left as it was. The error line."""
    export.write_bytes(data)
    before = _state(db)
    code, out, err = fleet("import", str(export), "--db", str(db))
    assert (code, out) == (1, ""), err
    assert err.startswith("fleet: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert _state(db) == before
    return err


def test_import_refuses_an_event_time_out_of_range_and_changes_nothing(
    db: Path, demo: tuple[Path, str], tmp_path: Path
) -> None:
    """Regression: year 1 at +14:00 or 9999-12-31 at -14:00 parsed, and then overflowed: the
    run landed and the projections stopped, or a traceback; year 0 was 'not ISO 8601'."""
    lines = _another_run(demo, tmp_path)
    export = tmp_path / "edited.jsonl"
    for recorded_at, reason in (
        ("0000-01-01T00:00:00+00:00", "is not an ISO 8601 time with a zone (year 0 is out of"),
        ("99999-01-01T00:00:00+00:00", "is not an ISO 8601 time with a zone"),
        ("yesterday", "is not an ISO 8601 time with a zone"),
        ("0001-01-01T00:00:00+14:00", "is out of range (an event's time is from 1970-01-01"),
        ("9999-12-31T23:59:59-14:00", "is out of range"),
        ("1969-12-31T23:59:59+00:00", "is out of range"),
        ("9999-01-01T00:00:00+00:00", "is out of range"),
    ):
        err = _refused(db, export, _reseal(_edited(lines, 4, recorded_at=recorded_at)))
        assert f"refusing {export}, line 4: recorded_at {recorded_at!r} {reason}" in err
        assert err.endswith("; nothing was imported\n")
    # The same file with its times as recorded lands, and so do the first and last times.
    for recorded_at in ("1970-01-01T00:00:00+00:00", "9998-12-31T23:59:59.999999+00:00"):
        export.write_bytes(_reseal(_edited(lines, 3, recorded_at=recorded_at)))
        code, _, err = fleet("import", str(export), "--db", str(tmp_path / f"{recorded_at}.db"))
        assert code == 0, err
    export.write_bytes(_reseal(lines))
    code, _, err = fleet("import", str(export), "--db", str(db))
    assert code == 0, err
    assert asyncio.run(_run_ids(db)) == [demo[1], "second"]


def test_import_refuses_a_position_a_log_cannot_hold_and_changes_nothing(
    db: Path, demo: tuple[Path, str], tmp_path: Path
) -> None:
    """Regression: a position of 2**63 or more was a traceback (OverflowError) once the log
    was open; a negative one was 'out of order'."""
    lines = _another_run(demo, tmp_path)
    last = len(lines)
    export = tmp_path / "edited.jsonl"
    for number, changes, reason in (
        (last, {"position": 2**63}, f"position {2**63} is out of range (1 to 2**63 - 1"),
        (last, {"position": 2**64 + 5}, f"position {2**64 + 5} is out of range"),
        (2, {"position": -5}, "position -5 is out of range"),
        (2, {"position": 0}, "position 0 is out of range"),
        (last, {"version": 2**63}, f"version {2**63} is out of range"),
        (2, {"version": -1}, "version -1 is out of range"),
    ):
        err = _refused(db, export, _reseal(_edited(lines, number, **changes)))
        assert f"refusing {export}, line {number}: {reason}" in err
    # The largest position there is is taken: positions are renumbered on the way in.
    export.write_bytes(_reseal(_edited(lines, last, position=2**63 - 1)))
    code, out, err = fleet("import", str(export), "--db", str(db), "--json")
    assert code == 0, err
    assert json.loads(out)["last_position"] == _state(db)[0]


def test_import_of_a_folder_or_a_missing_file_says_which(tmp_path: Path) -> None:
    """Regression: a folder was 'no such file'."""
    code, out, err = fleet("import", str(tmp_path), "--db", str(tmp_path / "other.db"))
    assert (code, out) == (1, "")
    assert err == f"fleet: error: cannot read {tmp_path}: it is a folder (give the export's file)\n"
    code, _, err = fleet("import", str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "o.db"))
    assert code == 1
    assert err == f"fleet: error: cannot read {tmp_path / 'nope.jsonl'}: no such file\n"
    assert not list(tmp_path.iterdir()), "no log was created"


def test_importing_what_export_printed_says_where_the_export_is(
    demo: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fleet export RUN > run.jsonl` keeps the notice, the run going to RUN.jsonl: importing
    run.jsonl said only "Expecting value: line 1 column 1 (char 0)"."""
    log, run_id = demo
    monkeypatch.chdir(tmp_path)
    code, printed, _ = fleet("export", run_id, "--db", str(log))
    assert code == 0
    (tmp_path / "run.jsonl").write_text(printed)
    code, out, err = fleet("import", "run.jsonl", "--db", str(tmp_path / "other.db"))
    assert (code, out) == (1, "")
    assert err.startswith("fleet: error: refusing run.jsonl, line 1: this is the notice")
    assert "`fleet export RUN -o -` writes the run to stdout" in err
    assert not (tmp_path / "other.db").exists(), "no log was created"
    # The file the notice names is the export.
    code, out, err = fleet("import", f"{run_id}.jsonl", "--db", str(tmp_path / "other.db"))
    assert code == 0, err


EMPTY_STDIN = "fleet: error: refusing <stdin>: the file is empty; nothing was imported\n"
WITHOUT_A_STREAM = {
    "import - <&-": (["import", "-", "--db", "NEW"], 0, 1, EMPTY_STDIN),
    "export -o - >&-": (["export", "RUN", "-o", "-", "--db", "LOG"], 1, 0, ""),
    "runs --json >&-": (["runs", "--json", "--db", "LOG"], 1, 0, ""),
}


@pytest.mark.parametrize(
    ("argv", "closed", "code", "said"), WITHOUT_A_STREAM.values(), ids=WITHOUT_A_STREAM.keys()
)
def test_a_command_started_without_a_standard_stream_reads_and_writes_dev_null(
    argv: list[str], closed: int, code: int, said: str, demo: tuple[Path, str], tmp_path: Path
) -> None:
    """Regression: with stdin (or stdout) closed, Python's `sys.stdin` is None and these
    were an AttributeError traceback; now stdin reads as empty, stdout as /dev/null."""
    log, run_id = demo
    values = {"NEW": str(tmp_path / "new.db"), "LOG": str(log), "RUN": run_id}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *(values.get(a, a) for a in argv)],
        cwd=Path(__file__).parents[2], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(closed),
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (code, said)
    assert not (tmp_path / "new.db").exists()


def test_import_reads_an_export_from_a_pipe(demo: tuple[Path, str], tmp_path: Path) -> None:
    """`fleet import <(...)`: the file named is a pipe, not a regular file."""
    log, run_id = demo
    exported = tmp_path / "run.jsonl"
    assert fleet("export", run_id, "--db", str(log), "-o", str(exported))[0] == 0
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), pipe.open("wb") as writer:
            writer.write(exported.read_bytes())

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        code, out, err = fleet("import", str(pipe), "--db", str(tmp_path / "other.db"), "--json")
    finally:
        if feeder.is_alive():  # the pipe was not read: let the writer's open return
            os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))
        feeder.join(timeout=60)
    assert code == 0, err
    assert json.loads(out)["run_id"] == run_id


def test_import_refuses_a_run_id_the_api_would_not_take_and_changes_nothing(
    db: Path, demo: tuple[Path, str], tmp_path: Path
) -> None:
    """Regression: the header's run id could be any string: `../x` (whose `fleet export` then
    wrote `../x.jsonl`), escape sequences (printed raw by `fleet import`), 5000 characters."""
    export = tmp_path / "edited.jsonl"
    for run_id in ("../../etc/x", "a/b", "red\x1b[31mrun", "a\nb", "nul\x00", "a b", "x" * 129,
                   ".hidden", "-rf"):  # fmt: skip
        err = _refused(db, export, _reseal(_another_run(demo, tmp_path, run_id)))
        shown = repr(run_id) if len(repr(run_id)) <= 80 else repr(run_id)[:76] + "...'"
        assert (
            f"refusing {export}, line 1: the header's run_id {shown} is not a run id (1-128 " in err
        )
        assert "\x1b" not in err and "\x00" not in err
    err = _refused(db, export, _reseal(_another_run(demo, tmp_path, "")))
    assert "line 1: the header names no run_id" in err
    # The longest, and every character the API takes.
    for number, run_id in enumerate(("x" * 128, "Run_2.a:b@c-d")):
        export.write_bytes(_reseal(_another_run(demo, tmp_path, run_id)))
        target = tmp_path / f"new{number}.db"
        code, out, err = fleet("import", str(export), "--db", str(target), "--json")
        assert code == 0, err
        assert json.loads(out)["run_id"] == run_id


def test_import_refuses_an_agent_id_that_is_no_file_name_and_changes_nothing(
    db: Path, demo: tuple[Path, str], tmp_path: Path
) -> None:
    """An agent of the log is driven again by `fleet resume` or a worker, and writes its
    transcript to `<agent id>.jsonl`: `../../x` was taken, a file outside the folder."""
    export = tmp_path / "edited.jsonl"
    lines = _another_run(demo, tmp_path, "third")
    agent = next(
        json.loads(line)["data"]["agent_id"]
        for line in lines[1:]
        if json.loads(line)["type"] == "AgentCreated"
    )
    for hostile in ("../../../tmp/pwned", ".hidden", "a/b", "x" * 201, "red\x1b[31m"):
        new = json.dumps(hostile)[1:-1].encode()
        edited = [line.replace(agent.encode(), new) for line in lines]
        err = _refused(db, export, _reseal(edited))
        assert "is not an agent id (1-200 letters, digits or ._:@-" in err, err
    # The longest an agent id may be (orchestrator-<a 128-character run id> is 141).
    edited = [line.replace(agent.encode(), b"a" * 200) for line in lines]
    export.write_bytes(_reseal(edited))
    code, _, err = fleet("import", str(export), "--db", str(tmp_path / "new.db"))
    assert code == 0, err


def test_import_refuses_a_lone_surrogate_and_changes_nothing(
    db: Path, demo: tuple[Path, str], tmp_path: Path
) -> None:
    """Regression: a `\\ud800` escape (half a UTF-16 pair) in an event's data or meta was a
    traceback (a string no UTF-8 encoder takes), or landed in a key of the data."""
    lines = _another_run(demo, tmp_path)
    export = tmp_path / "edited.jsonl"
    started = json.loads(lines[1])
    for number, changes in (
        (2, {"data": {**started["data"], "task": "half \ud800 a pair"}}),
        (2, {"data": {**started["data"], "config": {"\udc00": 1}}}),
        (2, {"meta": {**started["meta"], "correlation_id": "x\udfff"}}),
    ):
        err = _refused(db, export, _reseal(_edited(lines, number, **changes)))
        assert f"refusing {export}, line {number}: a string holds a lone UTF-16 surrogate" in err
    # A whole pair is a character like another.
    paired = {**started["data"], "task": "\U0001f600"}
    export.write_bytes(_reseal(_edited(lines, 2, data=paired)))
    assert b"\\ud83d\\ude00" in export.read_bytes()
    code, _, err = fleet("import", str(export), "--db", str(db))
    assert code == 0, err


def test_import_errors_show_a_long_value_cut_and_control_characters_escaped(
    db: Path, demo: tuple[Path, str], tmp_path: Path
) -> None:
    """Regression: a refusal quoted the file's value whole (an event type of 100 000
    characters made a line as long); a header version of true was taken for 1."""
    lines = _another_run(demo, tmp_path)
    export = tmp_path / "edited.jsonl"
    for number, changes, reason in (
        (4, {"type": "X" * 100_000}, "unknown event type 'XXXX"),
        (len(lines), {"stream_id": "agent-\x1b[2J" * 1000}, "stream 'agent-\\x1b[2Jagent-"),
        (4, {"schema": "9" * 10_000}, "schema '9999"),
        (1, {"version": True}, "export format version True is not supported"),
    ):
        err = _refused(db, export, _reseal(_edited(lines, number, **changes)))
        assert f"refusing {export}, line {number}: " in err
        assert reason in err
        assert len(err) < len(str(export)) + 400, err
        assert "\x1b" not in err


class _Fleet:
    """`fleet ARGS` in a process of its own (to send it Ctrl-C), its output read as it comes.
    Made by the `spawn` fixture, which kills it at teardown if a failed test left it."""

    def __init__(self, *args: str, stdin: int = subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", *args],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self._out: list[str] = []
        self._err: list[str] = []
        self._said = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(pipe, lines), daemon=True)
            for pipe, lines in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: Any, lines: list[str]) -> None:
        for line in pipe:
            with self._said:
                lines.append(line.decode(errors="replace"))
                self._said.notify_all()

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Until a line of stderr holds `text` (AssertionError after `timeout` seconds)."""
        with self._said:
            said = self._said.wait_for(lambda: any(text in line for line in self._err), timeout)
        assert said, f"no {text!r} on stderr in {timeout} s: {self._err}"

    def end(self, timeout: float = 60.0) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) once it has exited (TimeoutExpired after `timeout`)."""
        code = self.proc.wait(timeout)
        self.close()
        return code, "".join(self._out), "".join(self._err)

    def close(self) -> None:
        """Kill it if it runs still; close its pipes once read to their end."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(60)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def spawn() -> Iterator[Callable[..., _Fleet]]:
    """Starts `_Fleet`s; kills any still running after the test."""
    started: list[_Fleet] = []

    def start(*args: str, stdin: int = subprocess.DEVNULL) -> _Fleet:
        started.append(_Fleet(*args, stdin=stdin))
        return started[-1]

    yield start
    for process in started:
        process.close()


def _interrupted(importing: _Fleet, db: Path) -> None:
    """Ctrl-C the import: it ends at once, says nothing was imported, and made no log."""
    importing.proc.send_signal(signal.SIGINT)
    code, out, err = importing.end(timeout=30)
    assert (code, out) == (130, "")
    assert err.endswith("fleet: import interrupted; nothing was imported\n")
    assert "Traceback" not in err
    assert not db.exists()


def test_import_from_a_fifo_without_a_writer_says_so_and_ctrl_c_ends_it(
    spawn: Callable[..., _Fleet], tmp_path: Path
) -> None:
    """Regression: `fleet import FIFO` with no writer waited silently, and Ctrl-C did not end
    it (the blocked open held `asyncio.run` until a writer came)."""
    fifo, db = tmp_path / "fifo", tmp_path / "other.db"
    os.mkfifo(fifo)
    importing = spawn("import", str(fifo), "--db", str(db))
    importing.wait_for(f"fleet: waiting for a writer on {fifo}")
    _interrupted(importing, db)


def test_import_from_a_fifo_reads_the_writer_that_comes(
    spawn: Callable[..., _Fleet], demo: tuple[Path, str], tmp_path: Path
) -> None:
    log, run_id = demo
    exported, fifo, db = tmp_path / "run.jsonl", tmp_path / "fifo", tmp_path / "other.db"
    assert fleet("export", run_id, "--db", str(log), "-o", str(exported))[0] == 0
    os.mkfifo(fifo)
    importing = spawn("import", str(fifo), "--db", str(db), "--json")
    importing.wait_for("waiting for a writer")
    with fifo.open("wb") as writer:  # the import is the reader this open waits for
        writer.write(exported.read_bytes())
    code, out, err = importing.end()

    assert code == 0, err
    assert json.loads(out)["run_id"] == run_id
    assert asyncio.run(_run_ids(db)) == [run_id]


def test_ctrl_c_ends_an_import_whose_fifo_writer_is_silent(
    spawn: Callable[..., _Fleet], demo: tuple[Path, str], tmp_path: Path
) -> None:
    """A writer that opened the FIFO and sends nothing more: Ctrl-C ends the import at once
    (a read blocked on a worker thread held it until the writer wrote or went away)."""
    log, run_id = demo
    exported, fifo, db = tmp_path / "run.jsonl", tmp_path / "fifo", tmp_path / "other.db"
    assert fleet("export", run_id, "--db", str(log), "-o", str(exported))[0] == 0
    os.mkfifo(fifo)
    importing = spawn("import", str(fifo), "--db", str(db))
    importing.wait_for("waiting for a writer")
    with fifo.open("wb") as writer:
        writer.write(exported.read_bytes().splitlines(keepends=True)[0])
        writer.flush()
        _interrupted(importing, db)


def test_ctrl_c_ends_an_import_whose_stdin_producer_is_silent(
    spawn: Callable[..., _Fleet], demo: tuple[Path, str], tmp_path: Path
) -> None:
    """`producer | fleet import -` with a producer that sent a line and nothing more: Ctrl-C
    ends the import at once (stdin read on a worker thread held it until the producer wrote
    or went away), and leaves the pipe as it found it."""
    log, run_id = demo
    exported, db = tmp_path / "run.jsonl", tmp_path / "other.db"
    assert fleet("export", run_id, "--db", str(log), "-o", str(exported))[0] == 0
    importing = spawn("import", "-", "--db", str(db), stdin=subprocess.PIPE)
    producer = importing.proc.stdin
    assert producer is not None
    producer.write(exported.read_bytes().splitlines(keepends=True)[0])
    producer.flush()
    deadline = time.monotonic() + 60
    while _unread(producer.fileno()) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the import has taken the line: it is reading stdin
    assert _unread(producer.fileno()) == 0, "the import never read its stdin"
    try:
        _interrupted(importing, db)
    finally:
        producer.close()


def test_import_from_the_terminal_says_so_and_ctrl_c_ends_it(
    spawn: Callable[..., _Fleet], tmp_path: Path
) -> None:
    """`fleet import -` typed at a terminal waited silently, and Ctrl-C did not end it (the
    read blocked on a worker thread held `asyncio.run` until a line was typed)."""
    db = tmp_path / "other.db"
    main_end, terminal = pty.openpty()
    try:
        importing = spawn("import", "-", "--db", str(db), stdin=terminal)
        importing.wait_for("fleet: reading the export from the terminal")
        _interrupted(importing, db)
        assert os.get_blocking(terminal)  # the terminal left as it was found, for the shell
    finally:
        os.close(terminal)
        os.close(main_end)


def _unread(fd: int) -> int:
    """Bytes written to the pipe `fd` and not read yet (FIONREAD works on either end)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def test_paths_with_rich_markup_are_printed_as_text(demo: tuple[Path, str], tmp_path: Path) -> None:
    """Regression: a `[/]` in the export's path or the log's crashed with a MarkupError."""
    log, run_id = demo
    (tmp_path / "out[").mkdir()
    (tmp_path / "log[").mkdir()
    exported, other = tmp_path / "out[" / "]run.jsonl", tmp_path / "log[" / "]o.db"

    code, out, err = fleet("export", run_id, "--db", str(log), "-o", str(exported))
    assert code == 0, err
    hint = next(line for line in out.splitlines() if line.startswith("load it elsewhere with "))
    words = shlex.split(hint.removeprefix("load it elsewhere with "))
    assert words == ["fleet", "import", str(exported), "--db", "OTHER.db"]  # pastes whole
    code, out, err = fleet("import", str(exported), "--db", str(other))
    assert code == 0, err
    assert f"fleetreplay{run_id}--db{shlex.quote(str(other))}" in "".join(out.split())


def test_import_refuses_a_damaged_export_and_creates_no_log(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    log, run_id = demo
    exported = tmp_path / "run.jsonl"
    assert fleet("export", run_id, "--db", str(log), "-o", str(exported))[0] == 0
    lines = exported.read_bytes().splitlines(keepends=True)
    (tmp_path / "cut.jsonl").write_bytes(b"".join(lines[:-1]))
    (tmp_path / "mid.jsonl").write_bytes(b"".join(lines[:-1])[:-20])  # cut in its last event
    (tmp_path / "junk.txt").write_text("not an export\n")

    for name, reason in (
        ("cut.jsonl", "truncated"),
        ("mid.jsonl", f"line {len(lines) - 1}: the file ends mid-line: truncated?"),
        ("junk.txt", "not a JSON Lines run export"),
    ):
        code, _, err = fleet("import", str(tmp_path / name), "--db", str(tmp_path / "other.db"))
        assert code == 1
        assert reason in err
        assert "nothing was imported" in err
    assert not (tmp_path / "other.db").exists()
    code, _, err = fleet("import", str(tmp_path / "missing.jsonl"), "--db", str(tmp_path / "o.db"))
    assert code == 1
    assert "cannot read" in err


def test_an_unknown_run_or_a_missing_log_is_a_clear_error(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    log, _ = demo
    for command in ("replay", "export"):
        code, _, err = fleet(command, "run-nope", "--db", str(log))
        assert code == 1
        assert "no run 'run-nope'" in err
    code, _, err = fleet("replay", "run-x", "--db", str(tmp_path / "none.db"))
    assert code == 1
    assert "no log at" in err
    assert not (tmp_path / "none.db").exists()


def test_rerun_unchanged_reports_no_divergence(db: Path, demo: tuple[Path, str]) -> None:
    code, out, err = fleet("replay", demo[1], "--db", str(db), "--rerun")

    assert code == 0, err
    assert "nothing is sent to any API" in " ".join(out.split())
    assert "no divergence" in out


def test_rerun_with_a_hook_that_blocks_reports_where_it_diverged(
    db: Path, demo: tuple[Path, str], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"hooks": {"PreToolUse": [{
        "matcher": "Bash",
        "hooks": [{"type": "command", "command": "echo 'no commands today' >&2; exit 2"}],
    }]}}))  # fmt: skip

    code, out, _ = fleet("replay", demo[1], "--db", str(db), "--rerun", "--hooks", str(settings),
                         "--json")  # fmt: skip

    assert code == 1
    result = json.loads(out)
    assert result["replay_of"] == demo[1]
    assert [(d["agent"], d["step"], d["kind"]) for d in result["divergences"]] == [
        ("build", 3, "hook_decision"),
        ("build", 3, "tool_result"),
    ]
    assert "no commands today" in result["divergences"][0]["actual"]

    code, out, _ = fleet("replay", result["run_id"], "--db", str(db))
    assert "diverged at step 3 (hook_decision)" in " ".join(out.split())


def test_a_run_id_is_found_with_or_without_a_run_prefix(demo: tuple[Path, str]) -> None:
    log, run_id = demo
    bare = run_id.removeprefix("run-")
    for given in (bare, f"run-{bare}"):
        code, out, _ = fleet("replay", given, "--db", str(log), "--json")
        assert code == 0
        assert json.loads(out)["run_id"] == run_id


def test_export_sign_and_import_verify_with_the_key_in_the_environment(
    demo: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, run_id = demo
    signed, plain = tmp_path / "signed.jsonl", tmp_path / "plain.jsonl"
    target = str(tmp_path / "other.db")
    monkeypatch.delenv("FLEET_EXPORT_KEY", raising=False)
    code, _, err = fleet("export", run_id, "--db", str(log), "--sign", "-o", str(signed))
    assert (code, err.count("\n")) == (1, 1)
    assert "FLEET_EXPORT_KEY" in err
    monkeypatch.setenv("FLEET_EXPORT_KEY", "short")
    assert "needs 16" in fleet("export", run_id, "--db", str(log), "--sign")[2]

    monkeypatch.setenv("FLEET_EXPORT_KEY", "a shared key of enough bytes")
    code, out, err = fleet(
        "export", run_id, "--db", str(log), "--sign", "-o", str(signed), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["signed"] is True
    assert fleet("export", run_id, "--db", str(log), "-o", str(plain))[0] == 0

    code, _, err = fleet("import", str(plain), "--verify", "--db", target)
    assert code == 1
    assert "not signed" in err
    monkeypatch.setenv("FLEET_EXPORT_KEY", "another key, also long enough")
    code, _, err = fleet("import", str(signed), "--verify", "--db", target)
    assert code == 1
    assert "signature does not match" in err
    assert not Path(target).exists()

    monkeypatch.setenv("FLEET_EXPORT_KEY", "a shared key of enough bytes")
    code, out, err = fleet("import", str(signed), "--verify", "--db", target, "--json")
    assert code == 0, err
    assert json.loads(out)["run_id"] == run_id


def test_replay_at_shows_the_named_runs_agents_tasks_and_card_only(
    db: Path, tmp_path: Path
) -> None:
    """It showed every run's (a log of four runs: 19 agents, 4 runs) under "run RUN"."""
    first = asyncio.run(_run_ids(db))[0]
    code, _, err = fleet("demo", "--workspace", str(tmp_path / "ws2"), "--db", str(db),
                         "--latency", "0", "--json")  # fmt: skip
    assert code == 0, err
    head = str(asyncio.run(_head(db)))
    views = {}
    for view in ("agents", "board", "runs"):
        code, out, _ = fleet("replay", first, "--db", str(db), "--at", head, "--view", view,
                             "--json")  # fmt: skip
        assert code == 0
        views[view] = json.loads(out)
    assert views["agents"]["agents"] and {a["run_id"] for a in views["agents"]["agents"]} == {first}
    assert views["agents"]["count"] == len(views["agents"]["agents"])
    tasks = [t for c in views["board"]["columns"] for t in c["tasks"]]
    assert tasks and {t["run_id"] for t in tasks} == {first}
    assert [r["id"] for r in views["runs"]["runs"]] == [first]
    code, out, _ = fleet("replay", first, "--db", str(db), "--at", head, "--view", "fleet")
    assert code == 0 and "the whole log" in out


async def _head(db: Path) -> int:
    async with SQLiteEventStore(db) as store:
        return await store.head()
