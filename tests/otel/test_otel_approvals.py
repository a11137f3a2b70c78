"""An approval in the trace: the time a tool call waited for a person is a span of its own."""

from __future__ import annotations

from pathlib import Path

from api.otel import map_events
from events import (
    AgentCreated,
    ApprovalDecided,
    ApprovalRequested,
    Meta,
    NewEvent,
    RunStarted,
    SQLiteEventStore,
    ToolCallCompleted,
    ToolCallRequested,
)


async def test_an_approval_is_a_span_under_the_call_it_held(tmp_path: Path) -> None:
    run = Meta(run_id="r1", agent_id="a1")
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await store.append("run-r1", [NewEvent(RunStarted(run_id="r1", task="t"), run)])
        await store.append(
            "agent-a1",
            [
                NewEvent(AgentCreated(agent_id="a1", name="build", role="builder", model="m"), run),
                NewEvent(ToolCallRequested(agent_id="a1", tool_use_id="tu1", name="Bash"), run),
                NewEvent(
                    ApprovalRequested(
                        approval_id="ap1", agent_id="a1", tool_use_id="tu1", tool_name="Bash",
                        reason="rm needs a person", timeout_s=60,
                    ),
                    run,
                ),
            ],
        )  # fmt: skip
        await store.append(
            "approval-ap1",
            [
                NewEvent(
                    ApprovalDecided(
                        approval_id="ap1", agent_id="a1", tool_use_id="tu1", decision="deny",
                        by="ana",
                    ),
                    run,
                )
            ],
        )  # fmt: skip
        await store.append(
            "agent-a1",
            [NewEvent(ToolCallCompleted(agent_id="a1", tool_use_id="tu1", name="Bash"), run)],
        )
        events = await store.read_all()
    spans = {s.name: s for s in map_events(events)}
    approval, tool = spans["approval Bash"], spans["execute_tool Bash"]
    assert approval.parent_id == tool.span_id
    assert tool.start_ns <= approval.start_ns <= approval.end_ns <= tool.end_ns
    assert approval.attributes["fleet.approval.decision"] == "deny"
    assert approval.attributes["fleet.approval.by"] == "ana"
    assert approval.attributes["fleet.approval.reason"] == "rm needs a person"
    assert "fleet.unfinished" not in approval.attributes
