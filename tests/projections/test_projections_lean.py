"""Lean reads: a bulk fold validates only the fields a read model's handler reads."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest
from pj_helpers import read_with_raw_row

from events import (
    AgentCreated,
    EventModel,
    Meta,
    ModelResponded,
    NewEvent,
    RecordedEvent,
    RunStarted,
    SQLiteEventStore,
    StoreError,
    ToolCallCompleted,
    ToolCallRequested,
    Usage,
)
from projections import (
    AgentsProjection,
    FleetProjection,
    FoldProjection,
    GraphProjection,
    ProjectionRunner,
    RunsProjection,
    default_projections,
)
from projections._checkpoints import Snapshots
from projections._folding import Slot, fold_page
from projections._lean import Lean

LEAN_PROJECTIONS = (AgentsProjection, FleetProjection, GraphProjection, RunsProjection)


def new(data: EventModel, agent: str | None = None) -> NewEvent:
    return NewEvent(data, Meta(run_id="r1", agent_id=agent))


def step(
    agent: str, n: int, *, reads: str | None = None, writes: str | None = None
) -> list[NewEvent]:
    """One tool call as fleet records it: the answer asking for it, the call, its result."""
    use = f"toolu_{agent}_{n}"
    path = writes or reads or "README.md"
    tool = "write_file" if writes else "read_file"
    answer = ModelResponded(
        agent_id=agent,
        message_id=f"msg_{agent}_{n}",
        model="claude-sonnet-4-5",
        stop_reason="tool_use",
        content=[
            {"type": "text", "text": f"Step {n}: I will look at {path} next. " * 4},
            {"type": "tool_use", "id": use, "name": tool, "input": {"path": path}},
        ],
        usage=Usage(input_tokens=900 + n, output_tokens=60, cache_read_input_tokens=400),
        cost_usd=0.0031,
        turn=n,
    )
    call = ToolCallRequested(
        agent_id=agent,
        tool_use_id=use,
        name=tool,
        input={"path": path, "content": "def word_count(text):\n    ...\n" * 8}
        if writes
        else {"path": path},
    )
    done = ToolCallCompleted(
        agent_id=agent,
        tool_use_id=use,
        name=tool,
        result="line one\nline two\n" * 20,
        is_error=n % 5 == 4,
        files_read=[reads] if reads else [],
        files_written=[writes] if writes else [],
    )
    return [new(answer, agent), new(call, agent), new(done, agent)]


def created(agent: str, role: str) -> NewEvent:
    data = AgentCreated(agent_id=agent, name=role, role=role, model="m", workspace="/ws")
    return new(data, agent)


BUILDER = created("b1", "builder")


async def write_log(store: SQLiteEventStore) -> None:
    """Two agents of one run: a builder writes a file a reviewer then reads."""
    await store.append("run-r1", [new(RunStarted(run_id="r1", task="rename a function"))])
    builder = [created("b1", "builder")]
    for n in range(1, 7):
        builder += step("b1", n, writes="src/words.py" if n % 2 else None)
    await store.append("agent-b1", builder)
    reviewer = [created("v1", "reviewer")]
    for n in range(1, 5):
        reviewer += step("v1", n, reads="src/words.py")
    await store.append("agent-v1", reviewer)


def decoded(event: RecordedEvent) -> bool:
    """Whether the event's data was decoded (a read event keeps its JSON until then)."""
    return event._text is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", LEAN_PROJECTIONS, ids=lambda k: k.__name__)
async def test_a_bulk_fold_with_lean_reads_gives_the_state_the_live_fold_gives(
    tmp_path: Path, kind: type[FoldProjection]
) -> None:
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await write_log(store)
        page = await store.read_all()
        projection = kind()
        slot = Slot(projection, projection.initial())
        fold_page(page, [slot], Snapshots(0, 1), {}, quiet=False)
        assert slot.failed is None
        # The lean types were folded from their few fields: their events stay undecoded.
        lean = {lean.type_name for lean in projection.lean}
        assert lean and not any(decoded(e) for e in page if e.type in lean)
        reference = kind()
        state = reference.initial()
        for event in await store.read_all():
            state = reference.apply(state, event)
        assert projection.view(slot.state) == reference.view(state)


async def test_every_read_model_rebuilt_and_travelled_to_gives_the_live_states(
    tmp_path: Path,
) -> None:
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await write_log(store)
        events = await store.read_all()
        middle = len(events) // 2
        async with ProjectionRunner(store) as runner:  # folded from 0: the bulk path
            for reference in default_projections():
                state = reference.initial()
                for event in events:
                    state = reference.apply(state, event)
                assert runner.view(reference.name) == reference.view(state), reference.name
                state = reference.initial()
                for event in events[:middle]:
                    state = reference.apply(state, event)
                travelled = await runner.view_at(reference.name, position=middle)
                assert travelled == reference.view(state), reference.name
            card = {c["id"]: c for c in runner.view("agents")["agents"]}["b1"]
            assert card["turns"] == 6 and card["files_produced"] == ["src/words.py"]


class ResultSizes(FoldProjection[dict[str, int]]):
    """A read model of a user's that reads a tool call's result whole."""

    name = "result-sizes"

    def __init__(self) -> None:
        super().__init__()
        self.handlers[ToolCallCompleted] = self._completed

    def initial(self) -> dict[str, int]:
        return {}

    def view(self, state: dict[str, int]) -> dict[str, int]:
        return dict(state)

    def _completed(self, state: dict[str, int], event: object, d: ToolCallCompleted) -> None:
        state[d.tool_use_id] = len(d.result)


async def test_a_lean_type_another_slot_reads_whole_is_decoded_whole(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await write_log(store)
        page = await store.read_all()
        slots = [Slot(p, p.initial()) for p in (AgentsProjection(), ResultSizes())]
        fold_page(page, slots, Snapshots(0, 1), {}, quiet=False)
        assert all(s.failed is None for s in slots)
        for name in {lean.type_name for lean in AgentsProjection.lean}:
            events = [e for e in page if e.type == name]
            assert events and all(decoded(e) == (name == "ToolCallCompleted") for e in events)
        assert len(slots[1].state) == 10 and set(slots[1].state.values()) == {360}


async def test_read_models_that_read_a_type_lean_share_its_lean_data(tmp_path: Path) -> None:
    async with SQLiteEventStore(tmp_path / "fleet.db") as store:
        await write_log(store)
        page = await store.read_all()
        kinds = (AgentsProjection, FleetProjection, RunsProjection)
        slots = [Slot(kind(), kind().initial()) for kind in kinds]
        given: list[tuple[str, int, object]] = []
        for slot in slots:  # what each handler of a ModelResponded is given
            handlers = slot.projection.handlers
            handler = handlers[ModelResponded]
            handlers[ModelResponded] = lambda s, e, d, h=handler, n=slot.name: (
                given.append((n, e.position, d)),
                h(s, e, d),
            )
        fold_page(page, slots, Snapshots(0, 1), {}, quiet=False)
        assert all(s.failed is None for s in slots)
        answers = [e for e in page if e.type == "ModelResponded"]
        assert answers and not any(decoded(e) for e in answers)
        # One validation an answer, of the fields the three read: the same object to each.
        for event in answers:
            data = {id(d) for _, position, d in given if position == event.position}
            assert len(data) == 1
        assert {name for name, _, _ in given} == {"agents", "fleet", "runs"}
        for slot, kind in zip(slots, kinds, strict=True):
            reference = kind()
            state = reference.initial()
            for event in await store.read_all():
                state = reference.apply(state, event)
            assert slot.projection.view(slot.state) == reference.view(state), slot.name


async def test_a_lean_event_that_does_not_decode_fails_the_fold_naming_its_position(
    tmp_path: Path,
) -> None:
    # A row whose listed field has the wrong type, as a damaged file would hold.
    bad = {"type": "ToolCallRequested", "agent_id": "b1", "tool_use_id": "u1", "name": 7}
    page = await read_with_raw_row(tmp_path / "fleet.db", "agent-b1", [BUILDER], 1, bad)
    projection = AgentsProjection()
    with pytest.raises(StoreError, match="position 2"):
        fold_page(page, [Slot(projection, projection.initial())], Snapshots(0, 1), {}, False)


def test_a_lean_read_of_a_field_the_event_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="ToolCallRequested has no field nmae"):
        Lean(ToolCallRequested, ("agent_id", "nmae"))


def fields_read(handler: object) -> set[str] | None:
    """The attributes the handler reads of its data argument (its third parameter), or
    None if it hands the data on whole (to a function that could read any field)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(handler)))  # type: ignore[arg-type]
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    data = function.args.args[3].arg
    names = [n for n in ast.walk(function) if isinstance(n, ast.Name) and n.id == data]
    attributes = [
        n
        for n in ast.walk(function)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == data
    ]
    if len(names) != len(attributes):
        return None
    return {a.attr for a in attributes}


@pytest.mark.parametrize("kind", LEAN_PROJECTIONS, ids=lambda k: k.__name__)
def test_a_lean_handler_reads_only_the_fields_it_lists(kind: type[FoldProjection]) -> None:
    projection = kind()
    assert projection.lean
    for lean in projection.lean:
        handler = projection.handlers[lean.cls]
        read = fields_read(handler)
        assert read is not None, f"{handler.__name__} hands its data on whole"
        assert read <= lean.fields, f"{handler.__name__} reads {sorted(read - lean.fields)}"


def test_the_check_of_a_handler_sees_a_field_it_does_not_list() -> None:
    def handler(self: object, state: object, event: object, d: ModelResponded) -> None:
        print(d.agent_id, d.content)

    def passes_it_on(self: object, state: object, event: object, d: ModelResponded) -> None:
        print(d.agent_id, vars(d))

    assert fields_read(handler) == {"agent_id", "content"}
    assert fields_read(passes_it_on) is None


async def test_a_row_refused_only_for_a_field_the_handler_does_not_read_is_folded(
    tmp_path: Path,
) -> None:
    # A key the whole model does not know, as a file edited by hand would hold.
    odd = {"type": "ModelResponded", "agent_id": "b1", "model": "m", "cost_usd": 0.5}
    odd["surprise"] = True
    page = await read_with_raw_row(tmp_path / "fleet.db", "agent-b1", [BUILDER], 1, odd)
    projection = AgentsProjection()
    slot = Slot(projection, projection.initial())
    fold_page(page, [slot], Snapshots(0, 1), {}, quiet=False)
    assert slot.state["agents"]["b1"]["cost_usd"] == 0.5
    with pytest.raises(StoreError, match="position 2"):
        _ = page[1].data  # left undecoded by the lean read; decoded whole, it is refused
