"""What the dashboard tests share: a scripted fleet's events, the server, the browser.

`fleet_script()` is a run of a scout-plan-build fleet written event by event
as the runtime would (the catalogue's events with their meta), including what
a plain pattern run rarely shows: a hook blocking a tool call, a model
response that fills most of a context window, a compaction, an agent still
waiting on another (an open wait, so a bottleneck now), a review sending a
task back, a failed agent and a task in FAILED. It comes in phases so a test
can append some before the page opens and the rest while it watches.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from api import ApiConfig, Serving, serving
from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    AgentWaiting,
    AgentWoke,
    ContextCompacted,
    EventModel,
    HookInvoked,
    Meta,
    ModelResponded,
    NewEvent,
    RunStarted,
    SQLiteEventStore,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 60_000
"""How long a dashboard test waits for the page to show something: CI runs three test
processes on two cores beside Chromium, and 20 s was once not enough for a drawer's fetch."""
ARTIFACTS = REPO_ROOT / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

RUN_ID = "run-5c0u7b1d"
ORCH = "orchestrator-5c0u7b1d"
SCOUT_A = "scout-1-a41f0c"
SCOUT_B = "scout-2-b7e2d9"
PLANNER = "plan-c3d4e5"
BUILDER = "build-d9e8f7"
DOCS = "docs-e1f2a3"

Step = tuple[str, list[NewEvent]]


def find_chromium() -> str | None:
    """The Chromium to drive (Debian's), or None when none is installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Script:
    """Collects (stream, events) steps with the meta the runtime would give them."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._tool = 0

    def add(self, stream: str, *datas: EventModel, agent: str | None = None) -> None:
        parent = None if agent in (None, ORCH) else ORCH
        meta = Meta(run_id=RUN_ID, agent_id=agent, parent_id=parent)
        self.steps.append((stream, [NewEvent(d, meta) for d in datas]))  # type: ignore[arg-type]

    def agent(self, agent_id: str, *datas: EventModel) -> None:
        self.add(f"agent-{agent_id}", *datas, agent=agent_id)

    def create(self, agent_id: str, name: str, role: str, model: str, prompt: str) -> None:
        self.agent(
            agent_id,
            AgentCreated(
                agent_id=agent_id, name=name, role=role, model=model, parent_id=ORCH,
                workspace="/work/sample", tools=["Read", "Grep", "Write"],
            ),
            AgentCommanded(agent_id=agent_id, prompt=prompt, by=ORCH),
        )  # fmt: skip

    def respond(self, agent_id: str, model: str, turn: int, *, tokens: tuple[int, int, int, int],
                cost: float, stop: str = "tool_use") -> None:  # fmt: skip
        fresh, output, cache_write, cache_read = tokens
        usage = Usage(
            input_tokens=fresh, output_tokens=output,
            cache_creation_input_tokens=cache_write, cache_read_input_tokens=cache_read,
        )  # fmt: skip
        self.agent(
            agent_id,
            ModelResponded(
                agent_id=agent_id, message_id=f"msg_{agent_id}_{turn}", model=model,
                stop_reason=stop, usage=usage, cost_usd=cost, duration_ms=420.0 + turn, turn=turn,
                content=[{"type": "text", "text": f"turn {turn}"}],
            ),
        )  # fmt: skip

    def call(
        self, agent_id: str, tool: str, tool_input: dict[str, Any], *, read: Sequence[str] = (),
        wrote: Sequence[str] = (), result: str = "ok", done: bool = True,
    ) -> None:  # fmt: skip
        self._tool += 1
        use_id = f"toolu_{self._tool:04d}"
        self.agent(agent_id, ToolCallRequested(agent_id=agent_id, tool_use_id=use_id, name=tool,
                                               input=tool_input))  # fmt: skip
        if done:
            self.agent(
                agent_id,
                ToolCallCompleted(
                    agent_id=agent_id, tool_use_id=use_id, name=tool, result=result,
                    duration_ms=3.5, files_read=list(read), files_written=list(wrote),
                ),
            )  # fmt: skip

    def blocked_call(
        self, agent_id: str, tool: str, tool_input: dict[str, Any], reason: str
    ) -> None:
        self._tool += 1
        use_id = f"toolu_{self._tool:04d}"
        self.agent(
            agent_id,
            ToolCallRequested(agent_id=agent_id, tool_use_id=use_id, name=tool, input=tool_input),
            HookInvoked(
                point="PreToolUse", kind="command", hook="guard.sh", agent_id=agent_id,
                tool_use_id=use_id, decision="deny", reason=reason, duration_ms=8.0,
            ),
            ToolCallCompleted(
                agent_id=agent_id, tool_use_id=use_id, name=tool, result=f"blocked: {reason}",
                is_error=True, blocked=True,
            ),
        )  # fmt: skip


def fleet_script() -> list[list[Step]]:
    """The scripted run in three phases (lists of steps; each step is one append)."""
    haiku, sonnet = "claude-haiku-4-5", "claude-sonnet-4-5"
    task = "add a --json flag to the word report"
    phases: list[list[Step]] = []

    s = _Script()
    s.add(
        f"run-{RUN_ID}",
        RunStarted(
            run_id=RUN_ID,
            task=task,
            pattern="scout-plan-build",
            model="haiku",
            simulated=True,
            workspace="/work/sample",
        ),
    )
    s.agent(ORCH, AgentCreated(agent_id=ORCH, name="orchestrator", role="orchestrator",
                               model=sonnet, tools=["create_agent", "wait_for_agents"]),
            AgentCommanded(agent_id=ORCH, prompt=task))  # fmt: skip
    s.add("task-t-json", TaskCreated(task_id="t-json", title="Add a --json flag to the report"),
          agent=ORCH)  # fmt: skip
    s.add("task-t-docs", TaskCreated(task_id="t-docs", title="Document the --json flag"),
          agent=ORCH)  # fmt: skip
    s.create(SCOUT_A, "scout-1", "scout", haiku, "Find where the report is printed.")
    s.create(SCOUT_B, "scout-2", "scout", sonnet, "Find the report's tests.")
    s.add("task-t-json", TaskMoved(task_id="t-json", column="PLAN", assignee=SCOUT_A), agent=ORCH)
    s.respond(SCOUT_A, haiku, 1, tokens=(1200, 150, 800, 0), cost=0.0021)
    s.call(SCOUT_A, "Grep", {"pattern": "def report"}, result="textstats/report.py:4")
    s.call(SCOUT_A, "Read", {"file_path": "textstats/report.py"}, read=["textstats/report.py"])
    s.respond(SCOUT_A, haiku, 2, tokens=(300, 220, 0, 2000), cost=0.0012)
    s.call(SCOUT_A, "Write", {"file_path": ".fleet/notes/relevant-files-1.md"},
           wrote=[".fleet/notes/relevant-files-1.md"])  # fmt: skip
    s.agent(ORCH, AgentWaiting(agent_id=ORCH, on=[SCOUT_A, SCOUT_B], timeout_s=600))
    phases.append(s.steps)

    s = _Script()
    s._tool = 100
    s.respond(SCOUT_B, sonnet, 1, tokens=(1500, 180, 900, 0), cost=0.0094)
    s.blocked_call(SCOUT_B, "Bash", {"command": "rm -rf build/"}, "destructive command")
    s.call(SCOUT_B, "Read", {"file_path": "tests/test_report.py"}, read=["tests/test_report.py"])
    s.call(SCOUT_B, "Write", {"file_path": ".fleet/notes/relevant-files-2.md"},
           wrote=[".fleet/notes/relevant-files-2.md"])  # fmt: skip
    s.agent(SCOUT_B, AgentCompleted(agent_id=SCOUT_B, summary="Tests live in tests/test_report.py.",
                                    artifacts=[".fleet/notes/relevant-files-2.md"]))  # fmt: skip
    s.agent(SCOUT_A, AgentCompleted(agent_id=SCOUT_A, summary="report() prints in report.py.",
                                    artifacts=[".fleet/notes/relevant-files-1.md"]))  # fmt: skip
    s.agent(ORCH, AgentWoke(agent_id=ORCH, on=[SCOUT_A, SCOUT_B], changed=[SCOUT_A, SCOUT_B],
                            waited_ms=1500.0))  # fmt: skip
    s.agent(SCOUT_A, AgentDeleted(agent_id=SCOUT_A, by=ORCH))
    s.create(PLANNER, "plan", "planner", sonnet, "Plan from the scouts' notes.")
    s.add("task-t-json", TaskMoved(task_id="t-json", column="PLAN", assignee=PLANNER), agent=ORCH)
    s.call(PLANNER, "Read", {"file_path": ".fleet/notes/relevant-files-1.md"},
           read=[".fleet/notes/relevant-files-1.md"])  # fmt: skip
    s.call(PLANNER, "Read", {"file_path": ".fleet/notes/relevant-files-2.md"},
           read=[".fleet/notes/relevant-files-2.md"])  # fmt: skip
    s.respond(PLANNER, sonnet, 1, tokens=(90_000, 2_000, 4_000, 30_000), cost=0.3120)
    s.agent(PLANNER, ContextCompacted(agent_id=PLANNER, tokens_before=126_000, tokens_after=21_000,
                                      summary="kept the plan outline"))  # fmt: skip
    s.respond(PLANNER, sonnet, 2, tokens=(20_000, 3_000, 0, 100_000), cost=0.0910)
    s.call(PLANNER, "Write", {"file_path": ".fleet/notes/plan.md"}, wrote=[".fleet/notes/plan.md"])
    s.agent(PLANNER, AgentCompleted(agent_id=PLANNER, summary="Plan written.",
                                    artifacts=[".fleet/notes/plan.md"]))  # fmt: skip
    phases.append(s.steps)

    s = _Script()
    s._tool = 200
    s.add("task-t-json", TaskMoved(task_id="t-json", column="BUILD", assignee=BUILDER,
                                   artifacts=[".fleet/notes/plan.md"]), agent=ORCH)  # fmt: skip
    s.create(BUILDER, "build", "builder", haiku, "Implement .fleet/notes/plan.md.")
    s.call(BUILDER, "Read", {"file_path": ".fleet/notes/plan.md"}, read=[".fleet/notes/plan.md"])
    s.respond(BUILDER, haiku, 1, tokens=(5000, 900, 1000, 0), cost=0.0077)
    s.call(BUILDER, "Edit", {"file_path": "textstats/report.py"}, read=["textstats/report.py"],
           wrote=["textstats/report.py"])  # fmt: skip
    s.add("task-t-json", TaskMoved(task_id="t-json", column="REVIEW"), agent=ORCH)
    s.add(
        "task-t-json", TaskMoved(task_id="t-json", column="BUILD", reason="tests fail"), agent=ORCH
    )
    s.call(BUILDER, "Bash", {"command": "python -m unittest"}, done=False)
    s.agent(ORCH, AgentWaiting(agent_id=ORCH, on=[BUILDER], timeout_s=900))
    s.create(DOCS, "docs", "builder", haiku, "Document the flag in README.md.")
    s.respond(DOCS, haiku, 1, tokens=(4000, 300, 0, 0), cost=0.0055)
    s.agent(DOCS, AgentFailed(agent_id=DOCS, error="agent budget of $0.005 exceeded",
                              limit="agent_usd"))  # fmt: skip
    s.add("task-t-docs", TaskMoved(task_id="t-docs", column="FAILED", assignee=DOCS,
                                   reason="docs agent failed"), agent=ORCH)  # fmt: skip
    phases.append(s.steps)
    return phases


async def append_steps(store: SQLiteEventStore, steps: Sequence[Step]) -> int:
    """Append each step in order (one append per step); returns the last position."""
    last = 0
    for stream_id, events in steps:
        recorded = await store.append(stream_id, events)
        last = recorded[-1].position
    return last


def count_events(steps: Sequence[Step]) -> int:
    return sum(len(events) for _, events in steps)


@contextlib.asynccontextmanager
async def dashboard_server(config: ApiConfig, port: int = 0) -> AsyncIterator[Serving]:
    """The app as users run it: uvicorn on loopback, `create_app` serving the dashboard at `/`."""
    async with serving(config, port=port) as running:
        yield running
