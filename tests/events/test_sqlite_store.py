"""What only the SQLite backend promises: its file, its locks, other processes."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, closing
from pathlib import Path

import pytest

from events import (
    AgentCommanded,
    EventFilter,
    Meta,
    NewEvent,
    NotADatabase,
    SQLiteEventStore,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)

HELPER = Path(__file__).with_name("store_process.py")


def command(agent: str, n: int) -> NewEvent:
    return NewEvent(AgentCommanded(agent_id=agent, prompt=f"step {n}"), Meta(agent_id=agent))


class Child:
    """A store in another process (tests/events/store_process.py), line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(120):  # several Pythons starting on a loaded machine
            raw = await self.process.stdout.readline()
        if not raw:
            assert self.process.stderr is not None
            raise AssertionError(f"child ended: {(await self.process.stderr.read()).decode()}")
        return raw.decode().strip()

    async def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()


@asynccontextmanager
async def child(*args: str) -> AsyncIterator[Child]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HELPER),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    proc = Child(process)
    try:
        assert await proc.line() == "ready"
        yield proc
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    async with SQLiteEventStore(tmp_path / "log.db", poll_interval=0.02) as store:
        yield store


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- the file ---------------------------------------------------------------------


async def test_the_log_is_a_wal_file_marked_as_fleets(store: SQLiteEventStore) -> None:
    with closing(raw(store.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA application_id").fetchone() == (0x666C7431,)


async def test_a_log_from_before_spans_reads_by_run_and_agent(tmp_path: Path) -> None:
    """A file written by the first schema (B-tree indexes, no spans) is brought up to date."""
    path = tmp_path / "old.db"
    async with SQLiteEventStore(path) as store:
        await store.append("agent-a", [command("a", 0)])
    with closing(raw(path)) as conn:  # make it look like the first schema
        conn.execute("DROP TABLE spans")
        conn.execute("CREATE INDEX events_by_run ON events (run_id, position)")
        rows = [
            (2, "agent-b", 1, "AgentCommanded", 1, '{"agent_id":"b","prompt":"p"}', "r", "b", 1),
            (3, "agent-a", 2, "AgentCommanded", 1, '{"agent_id":"a","prompt":"p"}', "r", "a", 1),
        ]
        conn.executemany(
            "INSERT INTO events (position, stream_id, version, type, schema_version, data, "
            "run_id, agent_id, source, recorded_at) VALUES (?,?,?,?,?,?,?,?,'runtime',?)",
            rows,
        )

    async with SQLiteEventStore(path) as store:
        by_run = await store.read_all(where=EventFilter.of(run_id="r"))
        by_agent = await store.read_all(where=EventFilter.of(agent_id="a"))
        await store.append("agent-b", [NewEvent(command("b", 1).data, Meta(run_id="r"))])
        later = await store.read_all(where=EventFilter.of(run_id="r"))

    assert [e.position for e in by_run] == [2, 3]
    assert [e.position for e in by_agent] == [1, 3]
    assert [e.position for e in later] == [2, 3, 4]
    with closing(raw(path)) as conn:
        indexes = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    assert ("events_by_run",) not in indexes


async def test_a_missing_folder_is_created(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "a" / "b" / "log.db") as store:
        await store.append("agent-a", [command("a", 0)])
    assert (tmp_path / "a" / "b" / "log.db").is_file()


async def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)

    with pytest.raises(NotADatabase) as caught:
        await SQLiteEventStore(path).open()

    assert caught.value.path == str(path)
    assert "not a fleet SQLite database" in str(caught.value)
    assert path.read_bytes() == content


async def test_another_applications_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(raw(path)) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    content = path.read_bytes()

    with pytest.raises(NotADatabase):
        await SQLiteEventStore(path).open()

    assert path.read_bytes() == content


async def test_a_folder_is_not_a_log(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        await SQLiteEventStore(tmp_path).open()


async def test_a_failed_opening_leaves_no_thread_behind(tmp_path: Path) -> None:
    """aiosqlite stops a connection's thread on a failed connect without waiting: the thread
    then calls into a loop that may have closed ("Event loop is closed" on stderr)."""
    before = set(threading.enumerate())

    with pytest.raises(StoreError, match="cannot open"):
        await SQLiteEventStore(tmp_path).open()  # a folder: sqlite3.connect fails

    left = [  # not the loop's default executor (`open` makes the folder there)
        t for t in threading.enumerate() if t not in before and not t.name.startswith("asyncio")
    ]
    assert left == []


async def test_a_store_opens_once(store: SQLiteEventStore) -> None:
    with pytest.raises(StoreError, match="opened before"):
        await store.open()


async def test_an_unopened_store_refuses_use(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "log.db")
    with pytest.raises(StoreClosed):
        await store.append("agent-a", [command("a", 0)])
    await store.aclose()
    assert store.closed


@pytest.mark.parametrize(
    "options",
    [{"max_event_bytes": 0}, {"poll_interval": 0}, {"lock_timeout": -1}],
    ids=["max_event_bytes", "poll_interval", "lock_timeout"],
)
def test_nonsense_options_are_refused(tmp_path: Path, options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        SQLiteEventStore(tmp_path / "log.db", **options)  # type: ignore[arg-type]


def test_a_store_refuses_appends_from_another_event_loop(tmp_path: Path) -> None:
    async def open_store() -> SQLiteEventStore:
        return await SQLiteEventStore(tmp_path / "log.db").open()

    async def append(store: SQLiteEventStore) -> None:
        with pytest.raises(StoreError, match="another event loop"):
            await store.append("agent-a", [command("a", 0)])
        assert await store.head() == 0

    with asyncio.Runner() as first, asyncio.Runner() as second:
        store = first.run(open_store())
        try:
            second.run(append(store))
        finally:
            first.run(store.aclose())


async def test_the_log_refuses_update_and_delete(store: SQLiteEventStore) -> None:
    """Append-only even against a careless hand with the sqlite3 shell."""
    await store.append("agent-a", [command("a", 0)])

    with closing(raw(store.path)) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="events are immutable"):
            conn.execute("UPDATE events SET data = '{}'")
        with pytest.raises(sqlite3.IntegrityError, match="events are never deleted"):
            conn.execute("DELETE FROM events")

    assert [e.data for e in await store.read_all()] == [command("a", 0).data]


async def test_the_store_never_updates_or_deletes_an_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every statement the store sends to SQLite, traced through a whole workload."""
    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)  # type: ignore[arg-type]
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    async with SQLiteEventStore(tmp_path / "log.db") as store:
        await store.append("agent-a", [command("a", n) for n in range(150)])
        await asyncio.gather(
            *(store.append(f"agent-{k}", [command(str(k), 0)]) for k in range(10)),
            store.append("agent-a", [command("a", 0)], expected_version=0),
            return_exceptions=True,
        )
        await store.read_all(where=EventFilter.of(run_id="r", agent_id="a"))
    monkeypatch.undo()

    assert any(s.startswith("INSERT INTO events") for s in statements)
    writes_to_events = re.compile(
        r"\b(UPDATE\s+events|DELETE\s+FROM\s+events|REPLACE\s+INTO\s+events|OR\s+REPLACE)\b",
        re.IGNORECASE,
    )
    assert [s for s in statements if writes_to_events.search(s)] == []


async def test_meta_ids_are_stored_as_null_when_absent(store: SQLiteEventStore) -> None:
    await store.append("agent-a", [NewEvent(AgentCommanded(agent_id="a", prompt="p"))])
    await store.append("agent-a", [NewEvent(AgentCommanded(agent_id="a", prompt="p"), Meta(
        run_id="r", agent_id="a", parent_id="o", causation_id=1, correlation_id="c", source="api"
    ))])  # fmt: skip

    with closing(raw(store.path)) as conn:
        rows = conn.execute(
            "SELECT run_id, agent_id, parent_id, causation_id, correlation_id, source "
            "FROM events ORDER BY position"
        ).fetchall()
    assert rows == [(None, None, None, None, None, "runtime"), ("r", "a", "o", 1, "c", "api")]


async def test_closing_ends_the_stores_threads(tmp_path: Path) -> None:
    """The store's two aiosqlite connections (writer, reader) each own a thread; both end."""
    before = set(threading.enumerate())
    async with SQLiteEventStore(tmp_path / "log.db") as store:
        await store.append("agent-a", [command("a", 0)])
        await store.read_all()
        started = [  # not the loop's default executor (`open` makes the folder there)
            t for t in threading.enumerate() if t not in before and not t.name.startswith("asyncio")
        ]
    assert len(started) == 2
    for thread in started:
        await asyncio.to_thread(thread.join, 5)
        assert not thread.is_alive()


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_garbage_collector_is_left_as_the_caller_had_it(
    store: SQLiteEventStore, enabled: bool
) -> None:
    """Encoding, committing and decoding pause the collector, and restore it."""
    if not enabled:
        gc.disable()
    try:
        await store.append("agent-a", [command("a", n) for n in range(500)])
        assert len(await store.read_all()) == 500
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


# -- read-only opening and the driver's errors -------------------------------------------


async def test_a_read_only_store_never_writes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    async with SQLiteEventStore(path) as store:
        await store.append("agent-a", [command("a", n) for n in range(3)])
    before = path.read_bytes()

    async with SQLiteEventStore(path, readonly=True) as reader:
        assert [e.position for e in await reader.read_all()] == [1, 2, 3]
        assert await reader.checkpoints.load_checkpoints() == {}
        with pytest.raises(StoreUnavailable, match="read-only"):
            await reader.append("agent-a", [command("a", 3)])

    assert path.read_bytes() == before


async def test_a_read_only_store_refuses_a_file_that_is_not_a_log(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(raw(path)) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")

    with pytest.raises(NotADatabase):
        await SQLiteEventStore(path, readonly=True).open()


def _sqlite_failure(path: Path, make: str) -> sqlite3.Error:
    """A real error from SQLite itself, provoked on a connection of our own."""
    if make == "full":
        with closing(raw(path)) as conn:
            conn.execute("CREATE TABLE t (x BLOB)")
            conn.execute("PRAGMA max_page_count = 3")
            try:
                conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
            except sqlite3.Error as e:
                return e
    if make == "readonly":
        with closing(raw(path)) as conn:
            conn.execute("CREATE TABLE t (x)")
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
            try:
                conn.execute("INSERT INTO t VALUES (1)")
            except sqlite3.Error as e:
                return e
    if make == "notadb":
        path.write_bytes(b"not a database at all\n" * 100)
        with closing(raw(path)) as conn:
            try:
                conn.execute("SELECT * FROM sqlite_master")
            except sqlite3.Error as e:
                return e
    if make == "locked":
        with closing(raw(path)) as holder, closing(sqlite3.connect(path, timeout=0)) as other:
            holder.execute("BEGIN IMMEDIATE")
            try:
                other.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                return e
    raise AssertionError(f"SQLite did not fail as {make!r}")


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        ("full", StoreUnavailable, "is full"),
        ("readonly", StoreUnavailable, "is read-only"),
        ("notadb", NotADatabase, "not a fleet SQLite database"),
        ("locked", StoreUnavailable, "held the log's write lock too long"),
    ],
)
def test_driver_errors_become_fleet_errors_in_one_place(
    tmp_path: Path, make: str, error: type[StoreError], words: str
) -> None:
    from events.sqlite._errors import store_error

    path = tmp_path / "log.db"
    translated = store_error(_sqlite_failure(path, make), "appending to", path)

    assert type(translated) is error
    assert words in str(translated)
    assert str(path) in str(translated)


async def test_a_full_disk_fails_the_append_with_the_reason_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own page limit stands in for a full disk (SQLITE_FULL either way)."""
    connect = sqlite3.connect

    def small_disk(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)  # type: ignore[arg-type]
        conn.execute("PRAGMA max_page_count = 40")
        return conn

    monkeypatch.setattr(sqlite3, "connect", small_disk)
    async with SQLiteEventStore(tmp_path / "log.db") as store:
        await store.append("agent-a", [command("a", 0)])
        big = [
            NewEvent(AgentCommanded(agent_id="a", prompt="x" * 2000), Meta(agent_id="a"))
            for _ in range(200)
        ]
        with pytest.raises(StoreUnavailable, match="is full") as caught:
            await store.append("agent-a", big)
        assert "full" in caught.value.reason
        assert await store.head() == 1
        [after] = await store.append("agent-a", [command("a", 1)], expected_version=1)
    assert after.position == 2


# -- the writer ---------------------------------------------------------------------


async def test_concurrent_appends_share_commits(store: SQLiteEventStore) -> None:
    """Group commit: 64 appenders at once need far fewer than 64 transactions."""
    results = await asyncio.gather(
        *(store.append(f"agent-{k}", [command(str(k), 0)]) for k in range(64))
    )

    commits = {recorded.recorded_at for [recorded] in results}
    assert len(commits) <= 8
    assert sorted(recorded.position for [recorded] in results) == list(range(1, 65))


async def test_an_idle_writer_waits_for_work_without_spinning(store: SQLiteEventStore) -> None:
    """Once answered, the writer looks for more work once (`_writer.py`, note 8), then
    waits: an open store with nothing to append takes no CPU, where a writer that kept
    looking would take a core for as long as the store stays open."""
    for n in range(1, 4):
        await store.append("agent-a", [command("a", n)])
    cpu = time.process_time()
    # The subject is an idle second: nothing to wait for but the time itself.
    await asyncio.sleep(1.0)
    assert time.process_time() - cpu < 0.25
    [recorded] = await store.append("agent-a", [command("a", 4)], expected_version=3)
    assert recorded.position == 4


async def test_a_writer_sees_what_another_writer_appended_to_its_streams(tmp_path: Path) -> None:
    """The writer remembers the head and its streams' versions; another writer makes
    them stale, and neither a version check nor a position may suffer for it."""
    async with SQLiteEventStore(tmp_path / "log.db") as one:
        await one.append("agent-a", [command("a", 0)], expected_version=0)
        async with SQLiteEventStore(tmp_path / "log.db") as other:
            await other.append("agent-a", [command("a", 1)], expected_version=1)
        # Stale memory says version 1: the append that expects 2 lands.
        [second] = await one.append("agent-a", [command("a", 2)], expected_version=2)
        async with SQLiteEventStore(tmp_path / "log.db") as other:
            await other.append("agent-a", [command("a", 3)], expected_version=3)
        # Stale memory says head 3: the append lands after the other writer's event.
        [fourth] = await one.append("agent-a", [command("a", 4)])
        with pytest.raises(VersionConflict) as conflict:
            await one.append("agent-a", [command("a", 5)], expected_version=4)
        # A stream this writer never saw is not taken for new when it exists.
        async with SQLiteEventStore(tmp_path / "log.db") as other:
            await other.append("agent-b", [command("b", 0)], expected_version=0)
        with pytest.raises(VersionConflict) as unseen:
            await one.append("agent-b", [command("b", 1)], expected_version=0)
        [b2] = await one.append("agent-b", [command("b", 1)])

    assert (second.position, second.version) == (3, 3)
    assert (fourth.position, fourth.version) == (5, 5)
    assert conflict.value.actual == 5
    assert unseen.value.actual == 1
    assert (b2.position, b2.version) == (7, 2)


async def test_large_groups_see_what_another_writer_appended(tmp_path: Path) -> None:
    """A group too large for one statement (one big append, or many appends) goes in by
    other statements (`_writer.py`, note 1); stale memory must not cost it either."""
    async with SQLiteEventStore(tmp_path / "log.db") as one:
        await one.append("agent-a", [command("a", n) for n in range(150)], expected_version=0)
        async with SQLiteEventStore(tmp_path / "log.db") as other:
            await other.append("agent-a", [command("a", n) for n in range(120)])
        big = await one.append("agent-a", [command("a", n) for n in range(130)])
        with pytest.raises(VersionConflict) as conflict:
            await one.append("agent-a", [command("a", n) for n in range(100)], expected_version=5)
        async with SQLiteEventStore(tmp_path / "log.db") as other:
            await other.append("agent-b", [command("b", 0)])
        many = await asyncio.gather(
            *(one.append(f"agent-{k}", [command(k, n) for n in range(10)]) for k in "bcdefgh")
        )
        positions = [e.position async for e in one.iter_all()]
        of_b = [e async for e in one.iter_all(where=EventFilter(agent_id="b"))]

    assert [(e.position, e.version) for e in (big[0], big[-1])] == [(271, 271), (400, 400)]
    assert conflict.value.actual == 400
    assert sorted(e.position for batch in many for e in batch) == list(range(402, 472))
    assert [e.version for e in many[0]] == list(range(2, 12))
    assert positions == list(range(1, 472))
    assert [e.version for e in of_b] == list(range(1, 12))


async def test_appends_of_one_statement_see_what_another_writer_appended(tmp_path: Path) -> None:
    """An append of up to 100 events of one type and meta is one statement through its own
    view (`_rows.py`, note 9); stale memory must not cost it, and its spans are widened."""

    def run(n: int) -> list[NewEvent]:
        return [
            NewEvent(command("a", k).data, Meta(run_id="run-1", agent_id="a")) for k in range(n)
        ]

    async with SQLiteEventStore(tmp_path / "log.db") as one:
        first = await one.append("agent-a", run(100))
        async with SQLiteEventStore(tmp_path / "log.db") as other:
            await other.append("agent-a", run(70))
        second = await one.append("agent-a", run(80))
        with pytest.raises(VersionConflict) as conflict:
            await one.append("agent-a", run(90), expected_version=100)
        of_run = [e.position async for e in one.iter_all(where=EventFilter(run_id="run-1"))]
        of_a = [e async for e in one.iter_all(where=EventFilter(agent_id="a"))]
        with closing(raw(one.path)) as conn:
            spans = conn.execute(
                "SELECT kind, key, first, last FROM spans ORDER BY kind"
            ).fetchall()

    assert [(e.position, e.version) for e in (first[0], first[-1])] == [(1, 1), (100, 100)]
    assert [(e.position, e.version) for e in (second[0], second[-1])] == [(171, 171), (250, 250)]
    assert conflict.value.actual == 250
    assert of_run == list(range(1, 251))
    assert [e.version for e in of_a] == list(range(1, 251))
    assert of_a[120].data == command("a", 20).data
    assert spans == [("agent", "a", 1, 250), ("run", "run-1", 1, 250)]


async def test_appends_wait_while_another_connection_holds_the_write_lock(
    store: SQLiteEventStore,
) -> None:
    with closing(raw(store.path)) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        append = asyncio.create_task(store.append("agent-a", [command("a", 0)]))
        await asyncio.sleep(0.1)
        assert not append.done()
        assert await store.head() == 0  # reads are not blocked
        blocker.execute("COMMIT")
    async with asyncio.timeout(30):
        [recorded] = await append
    assert recorded.position == 1


async def test_an_append_that_cannot_get_the_lock_in_time_fails_and_writes_nothing(
    tmp_path: Path,
) -> None:
    async with SQLiteEventStore(tmp_path / "log.db", lock_timeout=0.1) as store:
        with closing(raw(store.path)) as blocker:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable, match="locked"):
                await store.append("agent-a", [command("a", 0)])
            # An append of 100 events of one meta is one statement, of 150 four (`_writer.py`,
            # note 1); of 150 mixed, four too, but INSERTs of every column.
            for events in (
                [command("a", n) for n in range(100)],
                [command("a", n) for n in range(150)],
                [NewEvent(command("a", n).data, Meta(run_id=f"r{n % 2}")) for n in range(150)],
            ):
                with pytest.raises(StoreUnavailable, match="locked"):
                    await store.append("agent-a", events)
            blocker.execute("ROLLBACK")
        assert await store.head() == 0
        [recorded] = await store.append("agent-a", [command("a", 0)], expected_version=0)
        assert recorded.position == 1


async def test_an_append_cancelled_before_its_turn_writes_nothing(store: SQLiteEventStore) -> None:
    with closing(raw(store.path)) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(store.append("agent-a", [command("a", 0)]))
        await asyncio.sleep(0.05)  # the writer has taken `first` and waits for the lock
        second = asyncio.create_task(store.append("agent-b", [command("b", 0)]))
        await asyncio.sleep(0)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        blocker.execute("COMMIT")
    async with asyncio.timeout(30):
        await first

    assert [e.stream_id for e in await store.read_all()] == ["agent-a"]
    [later] = await store.append("agent-b", [command("b", 1)], expected_version=0)
    assert later.position == 2


# -- other processes ----------------------------------------------------------------


async def test_processes_appending_to_one_file_at_once_lose_and_duplicate_nothing(
    store: SQLiteEventStore,
) -> None:
    """Three processes (two children and this one) append at the same moment."""
    per_child = 150
    async with (
        child("append", str(store.path), "agent-1", str(per_child)) as one,
        child("append", str(store.path), "agent-2", str(per_child)) as two,
    ):
        await asyncio.gather(one.go(), two.go())
        mine = [(await store.append("shared", [command("me", n)]))[0].position for n in range(100)]
        theirs = [json.loads(await one.line()), json.loads(await two.line())]

    total = 2 * per_child + 100
    everything = await store.read_all()
    assert [e.position for e in everything] == list(range(1, total + 1))
    assert sorted(mine + theirs[0] + theirs[1]) == list(range(1, total + 1))
    for stream in ("agent-1", "agent-2"):
        assert [e.version for e in everything if e.stream_id == stream] == list(
            range(1, per_child // 2 + 1)
        )
    shared = [e.version for e in everything if e.stream_id == "shared"]
    assert shared == list(range(1, 100 + per_child + 1))


async def test_processes_opening_one_new_file_at_once_all_open_it_as_one_log(
    tmp_path: Path,
) -> None:
    """`fleet run` and `fleet serve` started together on a fresh --db: each process
    creates the file, switches it to WAL and makes the schema at the same moment;
    none fails (not a fleet database, locked), all see the one log and its mark."""
    path = tmp_path / "new.db"
    streams = [f"agent-{n}" for n in range(6)]
    async with AsyncExitStack() as stack:
        children = [
            await stack.enter_async_context(child("open-and-append", str(path), stream))
            for stream in streams
        ]
        await asyncio.gather(*(c.go() for c in children))
        answers = [json.loads(await c.line()) for c in children]

    assert {a["application_id"] for a in answers} == {0x666C7431}
    assert sorted(a["position"] for a in answers) == list(range(1, len(streams) + 1))
    async with SQLiteEventStore(path, readonly=True) as store:
        assert sorted(e.stream_id for e in await store.read_all()) == streams
    with closing(raw(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_stores_opening_one_new_file_at_once_share_one_log(tmp_path: Path) -> None:
    """The same race within one process (each store's connections have threads of
    their own), many times over: every open succeeds and every append lands."""
    for attempt in range(10):
        path = tmp_path / f"new-{attempt}.db"
        stores = [SQLiteEventStore(path) for _ in range(6)]
        opened = await asyncio.gather(*(s.open() for s in stores), return_exceptions=True)
        try:
            assert [o for o in opened if isinstance(o, BaseException)] == []
            await asyncio.gather(
                *(s.append(f"agent-{n}", [command(f"agent-{n}", 0)]) for n, s in enumerate(stores))
            )
            everything = await stores[0].read_all()
            assert [e.position for e in everything] == list(range(1, len(stores) + 1))
            assert sorted(e.stream_id for e in everything) == [f"agent-{n}" for n in range(6)]
        finally:
            for s in stores:
                await s.aclose()
        with closing(raw(path)) as conn:
            assert conn.execute("PRAGMA application_id").fetchone() == (0x666C7431,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_subscriber_here_sees_events_appended_by_another_process(
    store: SQLiteEventStore,
) -> None:
    await store.append("agent-a", [command("a", 0)])
    seen: list[str] = []

    async def follow() -> None:
        async for event in store.subscribe(after=0):
            seen.append(event.stream_id)
            if len(seen) == 11:
                return

    follower = asyncio.create_task(follow())
    async with child("append", str(store.path), "agent-far", "10") as other:
        await other.go()
        await other.line()
    async with asyncio.timeout(60):
        await follower
    assert seen[0] == "agent-a"
    assert sorted(seen[1:]) == ["agent-far"] * 5 + ["shared"] * 5


async def test_a_subscriber_in_another_process_keeps_following(store: SQLiteEventStore) -> None:
    await store.append("agent-a", [command("a", 0), command("a", 1)])
    async with child("follow", str(store.path), "1", "6") as follower:
        await follower.go()
        assert await follower.line() == "2"  # caught up
        for n in range(2, 7):
            await store.append("agent-a", [command("a", n)])
            assert await follower.line() == str(n + 1)  # and follows, one append at a time


async def test_an_event_is_durable_when_append_returns(tmp_path: Path) -> None:
    """The child appends, prints the position, and dies without closing anything."""
    path = tmp_path / "log.db"
    async with child("append-and-die", str(path)) as dying:
        await dying.go()
        position = int(await dying.line())

    async with SQLiteEventStore(path) as store:
        [event] = await store.read_all()
    assert (event.position, event.stream_id) == (position, "agent-dies")


def test_a_long_lived_block_puts_what_it_made_straight_in_the_oldest_generation() -> None:
    """Loading a large state (a checkpoint, a snapshot) skips the young collections that
    would each walk all of it; a plain pause leaves the young generation as it is."""
    from events import gc_paused

    gc.collect()
    with gc_paused(long_lived=True):
        loaded = [[n] for n in range(1000)]
    with gc_paused():
        young = [[n] for n in range(1000)]
    assert gc.isenabled()
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert id(loaded) in oldest and all(id(item) in oldest for item in loaded)
    assert id(young) not in oldest


def test_a_long_lived_block_leaves_objects_the_program_froze_frozen() -> None:
    from events import gc_paused

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused(long_lived=True):
            made = [[n] for n in range(100)]
        assert gc.get_freeze_count() == frozen
        assert made and gc.isenabled()
    finally:
        gc.unfreeze()
