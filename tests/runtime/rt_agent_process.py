"""Run one scout in a process of its own, so that a test can kill it mid-run.

    python rt_agent_process.py DB WORKSPACE AGENT_ID SIMULATOR_URL

It creates the agent and runs it against the test's simulator at SIMULATOR_URL,
which holds the answer at the step the test kills it (tests/sim_support.py).
"""

from __future__ import annotations

import asyncio
import sys

from events import SQLiteEventStore
from runtime import Agent, AgentSpec, ModelClient

PROMPT = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."


async def main(db: str, workspace: str, agent_id: str, simulator_url: str) -> None:
    async with (
        SQLiteEventStore(db) as store,
        ModelClient.from_env(simulator_base_url=simulator_url, env={}) as client,
    ):
        spec = AgentSpec(
            agent_id=agent_id,
            name=agent_id,
            role="scout",
            model="haiku",
            workspace=workspace,
            run_id="run-1",
        )
        agent = Agent(store=store, client=client, spec=spec)
        await agent.create(task=PROMPT)
        print("created", flush=True)
        await agent.run_until_idle()
        print("finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
