"""A process on a PostgreSQL fleet log, driven by tests/events/test_postgres_store.py.

    python postgres_process.py append URL NAME TASKS COUNT  TASKS concurrent appenders, each
                                                            appending COUNT batches of 1 to 5
                                                            events to its own stream; prints
                                                            the positions it got (JSON)
    python postgres_process.py follow URL COUNT POLL        subscribes from 0 and prints each
                                                            position until COUNT were seen

Every mode prints "ready" once its store is open and then waits for a line
on stdin, so the test can start several processes at the same moment.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from events import AgentCommanded, Meta, NewEvent, open_store


def event(stream: str, n: int) -> NewEvent:
    return NewEvent(AgentCommanded(agent_id=stream, prompt=f"{n}"), Meta(agent_id=stream))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def wait_for_go() -> None:
    say("ready")
    await asyncio.to_thread(sys.stdin.readline)


async def append(url: str, name: str, tasks: int, count: int) -> None:
    async with open_store(url) as store:
        await wait_for_go()
        positions: list[int] = []

        async def appender(k: int) -> None:
            stream = f"agent-{name}-{k}"
            version = 0
            for _ in range(count):
                size = random.randint(1, 5)
                batch = [event(stream, version + i) for i in range(size)]
                recorded = await store.append(stream, batch, expected_version=version)
                version += size
                positions.extend(e.position for e in recorded)

        await asyncio.gather(*(appender(k) for k in range(tasks)))
        say(json.dumps(positions))


async def follow(url: str, count: int, poll: float) -> None:
    async with open_store(url, poll_interval=poll) as store:
        await wait_for_go()
        seen = 0
        async for recorded in store.subscribe(after=0):
            say(str(recorded.position))
            seen += 1
            if seen == count:
                return


def main() -> None:
    mode, url, *args = sys.argv[1:]
    if mode == "append":
        asyncio.run(append(url, args[0], int(args[1]), int(args[2])))
    elif mode == "follow":
        asyncio.run(follow(url, int(args[0]), float(args[1])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
