"""A second process on a fleet log, driven by tests/events/test_sqlite_store.py.

    python store_process.py append PATH STREAM COUNT   appends COUNT events, one per append,
                                                       alternating STREAM (checked versions)
                                                       and "shared" (ANY); prints positions
    python store_process.py append-and-die PATH         appends one event, prints its position,
                                                       then exits without closing anything
    python store_process.py follow PATH AFTER COUNT     subscribes after AFTER and prints each
                                                       position until COUNT were seen
    python store_process.py open-and-append PATH STREAM opens the log (new, perhaps: it
                                                       waits before opening), appends one
                                                       event to STREAM, prints its position
                                                       and the file's application_id

Every mode prints "ready" once its store is open (open-and-append: before it
opens it) and then waits for a line on stdin, so the test can start several
processes at the same moment.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from contextlib import closing

from events import ANY, AgentCommanded, Meta, NewEvent, SQLiteEventStore


def event(stream: str, n: int) -> NewEvent:
    return NewEvent(AgentCommanded(agent_id=stream, prompt=f"{n}"), Meta(agent_id=stream))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def wait_for_go() -> None:
    say("ready")
    await asyncio.to_thread(sys.stdin.readline)


async def append(path: str, stream: str, count: int) -> None:
    async with SQLiteEventStore(path) as store:
        await wait_for_go()
        positions = []
        for n in range(count):
            if n % 2 == 0:
                [recorded] = await store.append(stream, [event(stream, n)], expected_version=n // 2)
            else:
                [recorded] = await store.append("shared", [event(stream, n)], expected_version=ANY)
            positions.append(recorded.position)
        say(json.dumps(positions))


async def append_and_die(path: str) -> None:
    store = await SQLiteEventStore(path).open()
    await wait_for_go()
    [recorded] = await store.append("agent-dies", [event("agent-dies", 0)])
    say(str(recorded.position))
    os._exit(0)  # no close, no flush of anything but stdout: the event must already be durable


async def follow(path: str, after: int, count: int) -> None:
    async with SQLiteEventStore(path, poll_interval=0.02) as store:
        await wait_for_go()
        seen = 0
        async for recorded in store.subscribe(after=after):
            say(str(recorded.position))
            seen += 1
            if seen == count:
                return


async def open_and_append(path: str, stream: str) -> None:
    await wait_for_go()
    async with SQLiteEventStore(path) as store:
        [recorded] = await store.append(stream, [event(stream, 0)])
    with closing(sqlite3.connect(path)) as conn:
        ((app_id,),) = conn.execute("PRAGMA application_id").fetchall()
    say(json.dumps({"position": recorded.position, "application_id": app_id}))


def main() -> None:
    mode, path, *args = sys.argv[1:]
    if mode == "append":
        asyncio.run(append(path, args[0], int(args[1])))
    elif mode == "append-and-die":
        asyncio.run(append_and_die(path))
    elif mode == "follow":
        asyncio.run(follow(path, int(args[0]), int(args[1])))
    elif mode == "open-and-append":
        asyncio.run(open_and_append(path, args[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
