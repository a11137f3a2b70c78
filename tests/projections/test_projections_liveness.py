"""An external session's process in the log, and the judgement of it now (`_liveness.py`)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import pytest
from pj_helpers import Timeline, at

from events import (
    AgentCommanded,
    AgentCompleted,
    AgentCreated,
    AgentDeleted,
    AgentFailed,
    AgentWaiting,
    AgentWoke,
    ApprovalRequested,
    ExternalHookReceived,
    ExternalProcess,
)
from projections import (
    AgentsProjection,
    Host,
    judge_liveness,
    judged_card,
    parse_process_header,
    process_start,
    this_host,
)

HOST = Host(machine_id="m1", boot_id="b1", pid_ns="pid:[1]")
PROCESS = {"pid": 4242, "start": 77, "boot_id": "b1", "machine_id": "m1", "pid_ns": "pid:[1]"}
HEADER = "pid=4242;start=77;boot_id=b1;machine_id=m1;pid_ns=pid:[1]"


def hook(
    tl: Timeline, t: float, name: str, process: dict[str, Any] | None = None, **payload: Any
) -> None:
    data = {"session_id": "s", "hook_event_name": name, **payload}
    event = ExternalHookReceived(
        source_app="cc",
        session_id="s",
        hook_event_name=name,
        payload=data,
        process=None if process is None else ExternalProcess(**process),
    )
    tl.add(t, event, run=None)


def test_the_process_is_kept_until_a_session_start_names_another_or_none() -> None:
    """The README's settings forward SessionStart only; its http hooks say no process."""
    tl = Timeline()
    hook(tl, 0, "SessionStart", PROCESS)
    hook(tl, 1, "UserPromptSubmit", prompt="go")
    hook(tl, 2, "SubagentStart", agent_id="a1", agent_type="Explore")
    projection = AgentsProjection()
    cards = {c["id"]: c for c in tl.view(projection)["agents"]}
    assert cards["ext-s"]["process"] == PROCESS
    assert cards["ext-s-a1"]["process"] == PROCESS  # the subagent runs in the session's process

    hook(tl, 3, "SessionStart", source="resume")  # a new process, not named
    assert {c["id"]: c for c in tl.view(projection)["agents"]}["ext-s"]["process"] is None


def card(status: str = "working", process: dict[str, Any] | None = None, seen: float = 0) -> dict:
    return {"id": "ext-1", "external": True, "status": status, "process": process,
            "last_activity_at": at(seen)}  # fmt: skip


def test_judgement_by_time_when_the_process_cannot_be_looked_at() -> None:
    elsewhere = {**PROCESS, "machine_id": "m2"}
    now = datetime.fromisoformat(card()["last_activity_at"]).timestamp()
    assert judge_liveness(card(process=elsewhere), now=now + 61, stale_after=60, host=HOST) == (
        "stale"
    )
    assert judge_liveness(card(), now=now + 59, stale_after=60, host=HOST) is None
    assert judge_liveness(card("waiting"), now=now + 10**6, stale_after=60, host=None) is None
    assert judge_liveness(card("completed"), now=now + 10**6, stale_after=60, host=None) is None
    assert judge_liveness({**card(), "external": False}, now=now + 10**6, stale_after=60,
                          host=None) is None  # fmt: skip
    # One of fleet's agents is judged by its run alone: interrupted when the run was cut short.
    ours = {**card(), "id": "b1", "external": False}
    assert judge_liveness(ours, now=now, stale_after=60, host=HOST, cut=frozenset({"b1"})) == (
        "interrupted"
    )
    done = {**ours, "status": "completed"}
    assert judge_liveness(done, now=now, stale_after=60, host=HOST, cut=frozenset({"b1"})) is None


def test_a_judged_card_is_a_copy_and_an_interrupted_agent_runs_no_tool() -> None:
    running = {"name": "Bash", "tool_use_id": "t1", "status": "running", "at": at(0)}
    calls = {"count": 1, "errors": 0, "by_tool": {"Bash": 1}, "last": running}
    working = {**card(), "tool_calls": calls}
    assert judged_card(working, None) is working
    interrupted = judged_card(working, "interrupted")
    assert interrupted["status"] == "interrupted"
    assert interrupted["tool_calls"] == {**calls, "last": {**running, "status": "interrupted"}}
    assert working["status"] == "working" and running["status"] == "running"  # not mutated
    # A stale session may still be in its call; a call that ended stays as it ended.
    assert judged_card(working, "stale")["tool_calls"]["last"]["status"] == "running"
    ended = {**working, "tool_calls": {**calls, "last": {**running, "status": "ok"}}}
    assert judged_card(ended, "interrupted")["tool_calls"]["last"]["status"] == "ok"
    assert (
        judged_card({**card(), "tool_calls": {**calls, "last": None}}, "interrupted")["tool_calls"][
            "last"
        ]
        is None
    )


def test_judgement_by_the_process_on_this_host() -> None:
    here = Host(machine_id="m1", boot_id="b1", pid_ns="pid:[1]")
    rebooted = {**PROCESS, "boot_id": "b0"}
    assert judge_liveness(card("waiting", rebooted), now=0, stale_after=60, host=here) == (
        "interrupted"
    )
    other_ns = {**PROCESS, "pid_ns": "pid:[2]"}  # another container: time judges
    assert judge_liveness(card("created", other_ns), now=0, stale_after=60, host=here) is None


def test_a_live_process_is_never_stale_however_long_it_is_silent() -> None:
    """A 40-minute test suite sends no hook: its process runs, so it is working."""
    host = this_host()
    if host is None:
        pytest.skip("no /proc here")
    me = {"pid": os.getpid(), "start": process_start(os.getpid()), "boot_id": host.boot_id,
          "machine_id": host.machine_id, "pid_ns": host.pid_ns}  # fmt: skip
    assert judge_liveness(card(process=me), now=10**12, stale_after=60, host=host) is None
    reused = {**me, "start": me["start"] + 1}
    assert judge_liveness(card(process=reused), now=0, stale_after=60, host=host) == "interrupted"


@pytest.mark.parametrize(
    ("value", "peer", "ok"),
    [
        (HEADER, "127.0.0.1", True),
        (HEADER, "::1", True),
        (HEADER, "::ffff:127.0.0.1", True),
        (HEADER, "203.0.113.7", False),  # another machine cannot name this one's processes
        (HEADER, None, False),
        (None, "127.0.0.1", False),
        ("pid=0;start=1;boot_id=b;machine_id=m;pid_ns=n", "127.0.0.1", False),
        ("pid=-3;start=1;boot_id=b;machine_id=m;pid_ns=n", "127.0.0.1", False),
        ("pid=3;start=1;boot_id=b;machine_id=m", "127.0.0.1", False),
        ("pid=3;start=x;boot_id=b;machine_id=m;pid_ns=n", "127.0.0.1", False),
        ("garbage", "127.0.0.1", False),
    ],
)
def test_a_process_header_is_taken_whole_and_from_this_host_only(
    value: str | None, peer: str | None, ok: bool
) -> None:
    parsed = parse_process_header(value, peer)
    assert (parsed == PROCESS) if ok else parsed is None


def test_the_external_agents_in_an_active_status_are_kept_apart_event_by_event() -> None:
    """`live_external` is what the API judges now: the external cards in an active status,
    whichever event moved them (hooks, fleet's own lifecycle events, approvals)."""
    tl = Timeline()
    hook(tl, 0, "SessionStart", PROCESS)
    hook(tl, 1, "UserPromptSubmit", prompt="go")
    hook(tl, 2, "SubagentStart", agent_id="a1", agent_type="Explore")
    hook(tl, 3, "SubagentStop", agent_id="a1", agent_type="Explore")
    hook(tl, 4, "Notification")
    hook(tl, 5, "Stop")
    hook(tl, 6, "SessionEnd")
    hook(tl, 7, "SessionStart", source="resume")
    hook(tl, 8, "UserPromptSubmit", prompt="again")
    for agent, external in (("x1", True), ("i1", False)):
        tl.add(9, AgentCreated(agent_id=agent, name=agent, role="r", model="m", external=external))
        tl.add(10, AgentCommanded(agent_id=agent, prompt="go"))
        tl.add(11, AgentWaiting(agent_id=agent, on=["f"]))
        tl.add(12, AgentWoke(agent_id=agent, on=["f"]))
        tl.add(13, AgentCompleted(agent_id=agent, summary="ok"))
        tl.add(14, AgentCommanded(agent_id=agent, prompt="more"))
        tl.add(15, ApprovalRequested(approval_id=f"p-{agent}", agent_id=agent, tool_use_id="t",
                                     tool_name="Bash", timeout_s=60))  # fmt: skip
        tl.add(16, AgentFailed(agent_id=agent, error="boom"))
        tl.add(17, AgentCommanded(agent_id=agent, prompt="once more"))
        tl.add(18, AgentDeleted(agent_id=agent))
    projection = AgentsProjection()
    seen = set()
    for until in range(len(tl.events) + 1):
        state = tl.fold(projection, until)
        active = {
            r["id"]
            for r in state["agents"].values()
            if r["external"] and r["status"] in ("created", "working", "waiting")
        }
        assert set(state["live_external"]) == active, until
        seen |= active
    assert seen == {"ext-s", "ext-s-a1", "x1"}
    assert state["live_external"] == {"ext-s": None}  # working again; x1 deleted
