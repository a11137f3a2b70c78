"""`open_store`: a path or a URL picks the backend; read-only opening."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from events import (
    AgentCommanded,
    EventStore,
    LogNotFound,
    Meta,
    NewEvent,
    SQLiteEventStore,
    StoreUnavailable,
    UnsupportedLocation,
    open_store,
    without_password,
)
from events.memory import MemoryEventStore


def command(n: int) -> NewEvent:
    return NewEvent(AgentCommanded(agent_id="a", prompt=f"step {n}"), Meta(agent_id="a"))


async def test_a_path_opens_the_sqlite_log_there(tmp_path: Path) -> None:
    for location in (tmp_path / "a.db", str(tmp_path / "b.db")):
        async with open_store(location) as store:
            assert isinstance(store, SQLiteEventStore)
            assert isinstance(store, EventStore)
            await store.append("agent-a", [command(0)])
        assert await asyncio.to_thread(Path(location).is_file)


async def test_a_sqlite_url_names_a_relative_or_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_store("sqlite:///logs/relative.db") as store:
        await store.append("agent-a", [command(0)])
    async with open_store(f"sqlite:///{tmp_path}/absolute%20log.db") as store:
        await store.append("agent-a", [command(0)])

    assert (tmp_path / "logs" / "relative.db").is_file()
    assert (tmp_path / "absolute log.db").is_file()
    assert store.location == f"{tmp_path}/absolute log.db"


async def test_memory_opens_a_new_empty_log_each_time() -> None:
    async with open_store("memory:") as first:
        assert isinstance(first, MemoryEventStore)
        await first.append("agent-a", [command(0)])
        async with open_store("memory:") as second:
            assert await second.head() == 0
        assert await first.head() == 1
        assert first.location == "memory:"


@pytest.mark.parametrize("url", ["postgresql://fleet@127.0.0.1/fleet", "postgres://h/db?schema=s1"])
def test_a_postgresql_url_names_a_postgresql_log(url: str) -> None:
    store = open_store(url)
    assert type(store).__name__ == "PostgresEventStore"
    assert store.location == url


def test_a_postgresql_url_hides_its_password_in_messages() -> None:
    assert open_store("postgresql://u:secret@h/db").location == "postgresql://u:***@h/db"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://u:secret@h/db?schema=Bad", "lowercase identifier"),
        # PostgreSQL's identifiers hold 63 bytes: a longer one said only "lowercase".
        ("postgresql://u:secret@h/db?schema=" + "a" * 64, "at most 63 characters"),
        ("postgresql://u:secret@h:99999/db", "port must be 1 to 65535"),
        ("postgresql://u:secret@h/db?schema=a&schema=b", "one schema, not 2"),
        # urlsplit raised a bare ValueError: a traceback, and no word of the URL
        ("postgresql://u:secret@[::1/db", r"not a valid URL \(Invalid IPv6 URL\)"),
        ("postgresql://u:secret@[::1", r"not a valid URL \(Invalid IPv6 URL\)"),
    ],
)
def test_a_refused_postgresql_url_is_shown_without_its_password(url: str, words: str) -> None:
    with pytest.raises(UnsupportedLocation, match=words) as caught:
        open_store(url)
    assert "secret" not in str(caught.value)
    assert "u:***@" in str(caught.value)


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:se:cret@h:5432/db?schema=s", "postgresql://u:***@h:5432/db?schema=s"),
        ("postgresql://u:secret@[::1", "postgresql://u:***@[::1"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),  # an @ left in the password
        ("postgresql://u@h/db?note=a:b@c", "postgresql://u@h/db?note=a:b@c"),  # no password
        ("postgresql://h/db", "postgresql://h/db"),
        ("/srv/fleet:old@2/fleet.db", "/srv/fleet:old@2/fleet.db"),  # a path, not a URL
    ],
)
def test_without_password_masks_only_the_password(location: str, shown: str) -> None:
    assert without_password(location) == shown


def test_a_postgresql_schema_that_is_not_an_identifier_is_refused() -> None:
    with pytest.raises(UnsupportedLocation, match="lowercase identifier"):
        open_store("postgresql://h/db?schema=Robert');DROP")


@pytest.mark.parametrize("port", ["99999", "abc", "0", "-1"])
def test_a_postgresql_port_that_is_not_one_is_refused(port: str) -> None:
    # asyncpg raised a bare ValueError or OverflowError: a traceback, not one line.
    with pytest.raises(UnsupportedLocation, match="port must be 1 to 65535"):
        open_store(f"postgresql://u@h:{port}/db")
    with pytest.raises(UnsupportedLocation, match="port must be 1 to 65535"):
        open_store(f"postgresql://u@h:5432,[::1]:{port}/db")  # asyncpg's list of hosts


def test_a_postgresql_url_naming_two_schemas_is_refused() -> None:
    # The last was taken without a word: a typo in one meant another log than the other.
    with pytest.raises(UnsupportedLocation, match="one schema, not 2"):
        open_store("postgresql://u@h/db?schema=team_a&sslmode=disable&schema=team_b")


def test_a_postgresql_url_carries_the_stores_options_and_an_argument_wins() -> None:
    # `fleet run --db URL` takes a URL only: its timeouts could not be set at all, and
    # `?connect_timeout=5`, as libpq users write it, reached the server as a setting it refused.
    url = "postgresql://u@h/db?lock_timeout=0.5&command_timeout=30&connect_timeout=3&pool_size=2"
    store = open_store(url)
    seen = (store.lock_timeout, store.command_timeout, store.connect_timeout, store.pool_size)  # type: ignore[attr-defined]
    assert seen == (0.5, 30.0, 3.0, 2)
    assert "timeout" not in store._where.dsn and "pool_size" not in store._where.dsn  # type: ignore[attr-defined]
    assert open_store(url, lock_timeout=7).lock_timeout == 7  # type: ignore[attr-defined]
    defaults = open_store("postgresql://u@h/db?sslmode=disable")
    assert (defaults.lock_timeout, defaults.command_timeout, defaults.pool_size) == (10, 60, 4)  # type: ignore[attr-defined]
    assert "sslmode=disable" in defaults._where.dsn  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("lock_timeout=abc", "lock_timeout must be a number of seconds, got 'abc'"),
        ("command_timeout=-1", "command_timeout must be a number of seconds"),
        ("lock_timeout=inf", "lock_timeout must be a number of seconds"),
        ("command_timeout=nan", "command_timeout must be a number of seconds"),
        ("lock_timeout=", "lock_timeout must be a number of seconds, got ''"),
        ("connect_timeout=0", "connect_timeout must be more than 0 seconds"),
        ("pool_size=0", "pool_size must be a whole number from 1"),
        ("pool_size=1.5", "pool_size must be a whole number from 1"),
        ("lock_timeout=1&lock_timeout=2", "lock_timeout is given twice"),
    ],
)
def test_a_postgresql_url_with_a_bad_store_option_is_refused(query: str, words: str) -> None:
    with pytest.raises(UnsupportedLocation, match=words):
        open_store(f"postgresql://u:secret@h/db?{query}")


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("mysql://h/db", "no backend for mysql://"),
        ("sqlite://host/x.db", "sqlite:///relative/path"),
        ("sqlite:///", "names no file"),
        ("memory:named", '"memory:" alone'),
    ],
)
def test_a_location_no_backend_serves_is_refused(location: str, reason: str) -> None:
    with pytest.raises(UnsupportedLocation, match=reason):
        open_store(location)


def test_options_go_to_the_backend(tmp_path: Path) -> None:
    store = open_store(tmp_path / "x.db", max_event_bytes=10, poll_interval=0.5, readonly=True)
    assert (store.max_event_bytes, store.readonly) == (10, True)
    with pytest.raises(TypeError, match="nonsense"):
        open_store("memory:", nonsense=1)
    with pytest.raises(ValueError, match="poll_interval"):
        open_store("memory:", poll_interval=0)


async def test_opening_a_missing_log_read_only_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "fleet.db"
    with pytest.raises(LogNotFound, match="no fleet log at") as caught:
        await open_store(missing, readonly=True).open()
    assert caught.value.location == str(missing)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux's /sys")
async def test_a_log_whose_folder_cannot_be_made_is_unavailable_with_the_reason() -> None:
    """sysfs refuses new folders even to root, as a read-only disk would."""
    with pytest.raises(StoreUnavailable, match="cannot create the folder /sys/fleet-test") as e:
        await open_store("/sys/fleet-test/fleet.db").open()
    assert "read-only" in e.value.reason
