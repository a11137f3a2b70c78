"""Gates: a bulk fold decodes and folds a hook event only when it can change an agent's card."""

from __future__ import annotations

from pathlib import Path

import pytest
from pj_helpers import read_with_raw_row

from events import (
    AgentCreated,
    HookInvoked,
    Meta,
    NewEvent,
    RecordedEvent,
    SQLiteEventStore,
    StoreError,
)
from projections import AgentsProjection, ProjectionRunner
from projections._agents import _hook_matters
from projections._checkpoints import Snapshots
from projections._folding import Slot, _only_what_they_fold, fold_page
from projections._gates import Gate


def hook(n: int, decision: str = "allow", said: str | None = None) -> NewEvent:
    data = HookInvoked(
        point="PreToolUse",
        kind="python",
        agent_id="a1",
        tool_use_id=f"u{n}",
        decision=decision,  # type: ignore[arg-type]
        system_message=said,
    )
    return NewEvent(data, Meta(agent_id="a1"))


def created() -> NewEvent:
    data = AgentCreated(agent_id="a1", name="scout", role="scout", model="m", workspace="/ws")
    return NewEvent(data, Meta(agent_id="a1"))


def created_later() -> NewEvent:
    data = AgentCreated(agent_id="a2", name="scout", role="scout", model="m", workspace="/ws")
    return NewEvent(data, Meta(agent_id="a2"))


HOOKS = [
    hook(1),
    hook(2, "none"),
    hook(3, "block"),
    hook(4, "none", "careful with that file"),
    hook(5, "deny"),
    hook(6, "none", ""),  # an empty message says nothing
    hook(7),
]
# Positions (after the AgentCreated at 1) of the hook events that change the card.
MATTER = {4, 5, 6}


def decoded(event: RecordedEvent) -> bool:
    """Whether the event's data was decoded (a read event keeps its JSON until then)."""
    return event._text is None  # type: ignore[attr-defined]


async def test_a_rebuild_folds_the_hook_events_that_block_or_say_something(
    tmp_path: Path,
) -> None:
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await store.append("agent-a1", [created(), *HOOKS])
        async with ProjectionRunner(store) as runner:  # folded from 0: the bulk path
            card = runner.view("agents")["agents"][0]
            assert card["blocked_calls"] == 2
            assert [m["text"] for m in card["system_messages"]] == ["careful with that file"]
            reference = AgentsProjection()
            state = reference.initial()
            for event in await store.read_all():
                state = reference.apply(state, event)
            assert runner.view("agents") == reference.view(state)


async def test_a_fold_decodes_no_hook_event_that_changes_no_card(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await store.append("agent-a1", [created(), *HOOKS])
        page = await store.read_all()
        projection = AgentsProjection()
        slot = Slot(projection, projection.initial())
        fold_page(page, [slot], Snapshots(0, 1), {}, quiet=False)
        hooks = page[1:]
        assert {e.position for e in hooks if decoded(e)} == MATTER
        assert slot.state["agents"]["a1"]["blocked_calls"] == 2
        assert slot.position == len(page)


async def test_a_hook_event_that_does_not_decode_fails_the_fold_naming_its_position(
    tmp_path: Path,
) -> None:
    # A row whose gate field is not one the model allows, as a damaged file would hold.
    bad = {"type": "HookInvoked", "point": "PreToolUse", "kind": "python", "decision": "maybe"}
    page = await read_with_raw_row(tmp_path / "fleet.db", "agent-a1", [created(), hook(1)], 2, bad)
    projection = AgentsProjection()
    with pytest.raises(StoreError, match="position 3"):
        fold_page(page, [Slot(projection, projection.initial())], Snapshots(0, 1), {}, False)


async def test_the_sqlite_log_leaves_out_the_hook_events_the_gate_drops_before_they_are_read(
    tmp_path: Path,
) -> None:
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await store.append("agent-a1", [created(), *HOOKS, created_later()])
        projection = AgentsProjection()
        where = _only_what_they_fold([Slot(projection, projection.initial())])
        assert where is not None and [t.type for t in where.skippable] == ["HookInvoked"]
        read = await store.read_all(where=where)
        assert [e.position for e in read] == [1, *sorted(MATTER), 9]
        # A time-travel query reads so: the card it gives is the live fold's then.
        async with ProjectionRunner(store, snapshot_every=0) as runner:
            travelled = await runner.view_at("agents", position=8)
        reference = AgentsProjection()
        state = reference.initial()
        for event in (await store.read_all())[:8]:
            state = reference.apply(state, event)
        assert travelled == reference.view(state)
        assert travelled["agents"][0]["blocked_calls"] == 2


def test_the_gates_store_test_keeps_every_event_the_gate_passes() -> None:
    (gate,) = AgentsProjection.gates
    assert gate.store_test is not None
    for new in HOOKS:
        data = new.data
        assert gate.store_test.passes(data) == _hook_matters(data), data


def test_a_gate_on_a_field_the_event_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="HookInvoked has no field decison"):
        Gate(HookInvoked, ("decison",), lambda d: True)
