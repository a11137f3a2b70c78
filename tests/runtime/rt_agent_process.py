"""Run one scout in a process of its own, slowly, so that a test can kill it mid-run.

    python rt_agent_process.py DB WORKSPACE AGENT_ID

It creates the agent and runs it against its own simulator (each answer takes
`LATENCY_S`), and never returns normally before the test kills it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys

from events import SQLiteEventStore
from runtime import Agent, AgentSpec, ModelClient, Simulator

LATENCY_S = 0.25
PROMPT = "Task: rename `count_words` to `word_count`\n\nWrite your findings to notes/found.md."


async def main(db: str, workspace: str, agent_id: str) -> None:
    async with (
        SQLiteEventStore(db) as store,
        Simulator(latency_s=LATENCY_S) as sim,
        ModelClient.from_env(simulator_base_url=sim.base_url, env={}) as client,
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
    asyncio.run(main(*sys.argv[1:4]))
