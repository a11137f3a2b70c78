"""A fleet in a process of its own that starts one slow scout and then idles, until killed.

    python rt_fleet_process.py DB WORKSPACE

It prints the agent's id once the agent works (and holds its lease); each
answer of its simulator takes `LATENCY_S` (an hour: the first is held until the
test kills the process), so the agent is still working when the test looks at
it however slow the machine, and the process never ends by itself.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from runtime import RuntimeOptions, open_runtime

LATENCY_S = 3600.0
PROMPT = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."


async def main(db: str, workspace: str) -> None:
    options = RuntimeOptions(
        db=Path(db), workspace=Path(workspace), env={}, simulator_latency_s=LATENCY_S
    )
    async with open_runtime(options) as rt:
        status = await rt.fleet.create_agent("scout", "scout", PROMPT)
        print(status["id"], flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
