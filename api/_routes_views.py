"""Read models over HTTP: agents, fleet, graph, board and runs, now or at a past position.

Every view is the projection runner's view, validated through its response
model (`_view_models.py`, which the OpenAPI document is generated from) and
scoped by the same parameters wherever they make sense:

    run_id, agent_id, status, role   which agents (or tasks, or runs) the view covers
                                     (agent_id on the agents' list and run_id on the
                                     runs' are repeatable: these ones)
    at                               the view as of a past position (time travel)
    min_position, wait               answer once the view reflects a position (long poll)
    after, limit                     page a list; pass `next` back as `after`
    changed_after                    agents, runs and the board: the cards changed after a
                                     position (a client holding the list as of P asks for
                                     the rest; a task changes when it moves)

Every answer carries `Fleet-Position` and an `ETag`; `If-None-Match` gives 304
(`_polling.py`). A filter naming a run or an agent that does not exist gives an
empty list (or zero totals); an item route (`/v1/agents/{id}`, `/v1/runs/{id}`)
gives 404. An unknown query parameter is 400 naming it and the ones the route takes.

Notes (do not fix without reading this):
1. A page's cursor is an item's place in the unfiltered list (1 for the first
   agent created, or the first run started), not its place among the matches:
   agents and runs are only ever appended to their lists (a deleted agent
   stays, as "deleted"), so a cursor means the same thing on every page, with
   any filter, at any past position.
2. A page of agents (or runs), the agents a scoped fleet view totals, or
   the tasks of a filtered board, are cut from the state's records,
   filtered on the fields their cards copy as they are (a run record's
   `agents` is a dict where its card has a list: `in` reads both); only
   their cards are made. Making every card to serve fifty took
   0.25 s at 8,565 agents (a 1M-event log, `BENCHMARKS.md`).
3. An answer is validated and serialized with the cyclic garbage collector
   paused (as the runner makes views, `projections/_runner.py`, note 5): a
   large answer makes many objects and no cycles. Validating the graph at 1M
   events took 500-750 ms with the collector on and 110-150 ms with it paused.
   A page's cards are made in the same pause (`Answer.make`), and everything
   the answer made is let go before the pause ends: the collector counts
   what was made and not yet freed, so leaving the pause with the cards and
   the validated model alive had it walk them all (35 to 38 ms for the
   8,565 agents' cards at 1M, 12 for the graph). The whole agents answer
   went from 280-295 ms to 244-253, the graph's from 116-120 to 104-107
   (`bench/views.py --log`, `BENCHMARKS.md`, twenty-third pass).
4. A run whose status is "running" now and whose conductor no live process
   is (its `run-<id>` lease is not held) is answered "interrupted", as `fleet
   runs` says: the log cannot tell a run at work from one whose process was
   killed. So are the run's agents that the log has "created", "working" or
   "waiting" (their cards, the fleet totals, the graph's nodes, as note 5's
   sessions): their work was cut short with the run, until `fleet resume`
   takes it up. Which runs are conducted is read before the view, and the
   rendered answer is kept under it as well as the position (a lease that
   lapses changes the answer, not the log). A past position (`at` below the
   head) is answered as the log had it; the head is now.
5. So is an external session (a Claude Code process posting its hooks) that
   is "created", "working" or "waiting" in the log: answered "interrupted"
   when its process, on this host, no longer runs, or "stale" when it is
   working and no hook came for `stale_after_s` (`projections/_liveness.py`). The
   agents' list and card, the fleet totals (`active` and `by_status`) and the
   graph's nodes answer the same; a filter on status (the graph's too) sees the
   status answered. Which sessions are judged so is read before the view and
   kept with the position, as note 4's runs are; a past position is the log's. `by_status` holds a
   judged status only when some session is in it (a view at a past position
   is the runner's, as it is).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from events import AGENT_ID_RULE, ID_RULE, gc_paused, is_agent_id, is_id
from projections import (
    ACTIVE_STATUSES,
    COLUMNS,
    AgentsProjection,
    BoardProjection,
    GraphProjection,
    RunsProjection,
    conducted_runs,
    cut_short,
    fleet_totals,
    judge_liveness,
    judged_card,
    this_host,
)
from runtime.errors import AgentNotFound

from ._bodies import parse_query
from ._models import (
    AgentsQuery,
    BoardQuery,
    GraphQuery,
    RunsQuery,
    ScopedQuery,
    ViewQuery,
)
from ._openapi import Operation
from ._polling import ClientGone, answer, reach
from ._state import Services, services
from ._view_models import AgentCard, AgentPage, Board, FleetTotals, Graph, RunCard, RunPage
from .errors import HTTPProblem

__all__ = ["VIEWS", "Answer", "check_id", "operations", "page", "rendered", "routes"]

VIEWS = ("fleet", "graph", "board", "runs")
"""The views served as `GET /v1/<name>` (agents has its own routes)."""

_GONE = 499  # never sent: the client has disconnected (nginx's "client closed request")

T = TypeVar("T")


def check_id(value: str, what: str = "agent id") -> str:
    """`value` if it has the shape of an id (an agent's, a longer one: `is_agent_id`); else
    `HTTPProblem` 400 (no lookup happens)."""
    agent = what == "agent id"
    if not (is_agent_id(value) if agent else is_id(value)):
        rule = AGENT_ID_RULE if agent else ID_RULE
        raise HTTPProblem(
            400, f"Invalid {what}", f"{what} {value[:80]!r} is not {rule}", slug="invalid-id"
        )
    return value


def page(
    items: Iterable[T], keep: Callable[[T], bool], after: int, limit: int | None
) -> tuple[list[T], int, int | None]:
    """The matches of `keep` after cursor `after`: (page, matches in all, next cursor).

    Cursors count every item, matched or not, from 1 (note 1).
    """
    out: list[T] = []
    count = 0
    last = 0
    more = False
    for ordinal, item in enumerate(items, start=1):
        if not keep(item):
            continue
        count += 1
        if ordinal <= after:
            continue
        if limit is not None and len(out) == limit:
            more = True
            continue
        out.append(item)
        last = ordinal
    return out, count, last if more else None


async def _view(app: Services, name: str, at: int | None) -> dict[str, Any]:
    """The view `name` now, or as of `at` (no suspension when now: see `_respond`)."""
    if at is not None:
        return await app.runner.view_at(name, at)
    return app.runner.view(name)


async def _state(app: Services, name: str, at: int | None) -> Any:
    """The state of `name` now, or as of `at` (no suspension when now: see `_respond`)."""
    if at is not None:
        return await app.runner.state_at(name, at)
    return app.runner.state(name)


async def _page_of(
    app: Services,
    name: str,
    at: int | None,
    keep: Callable[[Mapping[str, Any]], bool],
    made_by: type[Any],
    card: Callable[[Any], dict[str, Any]],
    after: int = 0,
    limit: int | None = None,
) -> tuple[Callable[[], list[dict[str, Any]]], int, int | None]:
    """A page of the list `name` (agents, runs) that `keep` matches, now or as of `at`
    (every match without `limit`; no suspension when now): what makes its cards, to
    call where the answer is validated (note 3), their count and the next cursor.

    Cut from the state's records when the projection is fleet's own (`made_by`), the
    page's cards made alone by `card` (note 2); else from the view's cards.
    """
    if isinstance(app.runner.projection(name), made_by):
        state = await _state(app, name, at)
        records, count, next_cursor = page(state[name].values(), keep, after, limit)
        return (lambda: [card(r) for r in records]), count, next_cursor
    view = await _view(app, name, at)
    cards, count, next_cursor = page(view[name], keep, after, limit)
    return (lambda: cards), count, next_cursor


class Answer(NamedTuple):
    """A view's response model, and what makes its data: called where the data is
    validated (`rendered`, note 3)."""

    model: type[BaseModel]
    make: Callable[[], Any]


Render = Callable[[int | None], Awaitable[Answer]]


def rendered(answer: Answer) -> bytes:
    """`answer`'s JSON: its data made, validated and serialized in one pause of the
    collector, and let go before the pause ends (note 3)."""
    with gc_paused():
        text = answer.model.model_validate(answer.make()).model_dump_json(by_alias=True)
    return text.encode()


async def _respond(
    request: Request,
    app: Services,
    q: Any,
    render: Render,
    live_runs: Callable[[], Awaitable[frozenset[str]]] | None = None,
) -> Response:
    """Wait as `q` asks, then answer `render(q.at)`, kept by the position it reflects.

    For a view now, the position is read and the view rendered in one step of
    the event loop (nothing in between awaits), so the two agree. `live_runs`:
    the body depends on which runs a live process conducts too (note 4); it is
    asked before the position is read, and kept with it.
    """
    try:
        await reach(request, app, q.min_position, q.wait)
    except ClientGone:
        return Response(status_code=_GONE)
    at: int | None = getattr(q, "at", None)
    # Now, or at the head (what a view now reflects): which runs are conducted (note 4).
    now = at is None or at >= app.runner.position
    vary = await live_runs() if live_runs is not None and now else None
    position = at if at is not None else app.runner.position

    async def body() -> bytes:
        return rendered(await render(at))

    return await answer(request, await app.renders.get(request, position, body, vary), position)


def _agent_filter(
    q: AgentsQuery | ScopedQuery, judged: Mapping[str, str] | None = None
) -> Callable[[Mapping[str, Any]], bool]:
    extra = isinstance(q, AgentsQuery)
    judged = judged or {}
    # `agent_id` is repeatable on the agents' list, one id on the scoped views.
    ids = frozenset(q.agent_id) if isinstance(q.agent_id, list) else {q.agent_id} - {None}

    def keep(a: Mapping[str, Any]) -> bool:
        return (
            (q.run_id is None or a["run_id"] == q.run_id)
            and (not ids or a["id"] in ids)
            and (not q.status or judged.get(a["id"], a["status"]) in q.status)
            and (q.role is None or a["role"] == q.role)
            and (
                not extra
                or (
                    (q.model is None or a["model"] == q.model)  # type: ignore[union-attr]
                    and (q.parent_id is None or a["parent_id"] == q.parent_id)  # type: ignore[union-attr]
                    and (q.external is None or a["external"] == q.external)  # type: ignore[union-attr]
                    and (q.changed_after is None or a["position"] > q.changed_after)  # type: ignore[union-attr]
                )
            )
        )

    return keep


def _check_changed_after(
    app: Services, q: AgentsQuery | RunsQuery | BoardQuery, at: int | None
) -> None:
    """400 for a `changed_after` beyond the log's position (one beyond `at` fails validation)."""
    if at is None and q.changed_after is not None and q.changed_after > app.runner.position:
        raise HTTPProblem(
            400, "Invalid query",
            f"changed_after ({q.changed_after}) is beyond the view's position "
            f"({app.runner.position}): no card changed after it yet",
            slug="invalid-query",
        )  # fmt: skip


def _scoped(q: ScopedQuery) -> bool:
    return bool(q.run_id or q.agent_id or q.status or q.role)


class _Judged:
    """The agents whose status is judged otherwise now (note 5), by id, read when
    `_respond` calls it (only for a view now or at the head), else None: external
    sessions by their process and hooks, fleet's agents of an interrupted run (note 4)."""

    def __init__(self, app: Services) -> None:
        self._app = app
        self.statuses: dict[str, str] | None = None
        self.logged: dict[str, str] = {}  # the log's status of each judged agent

    async def __call__(self) -> frozenset[str]:
        cut = await self._cut_short()  # before the states are read: no await after
        runner = self._app.runner
        if isinstance(runner.projection("agents"), AgentsProjection):
            # Only the external agents in an active status: the fold keeps them apart, so a
            # request does not walk every card (8,560 at 1M events: 2 ms a request).
            state = runner.state("agents")
            agents = state["agents"]
            records: list[Mapping[str, Any]] = [agents[i] for i in state["live_external"]]
            records += [agents[i] for i in cut if i in agents]
        else:
            records = runner.view("agents")["agents"]
        return self.judge(records, cut)

    async def _cut_short(self) -> frozenset[str]:
        """The agents of the runs "running" in the log that no live process conducts."""
        runner = self._app.runner
        if not isinstance(runner.projection("runs"), RunsProjection):
            return frozenset()
        running = [r for r in runner.state("runs")["runs"].values() if r["status"] == "running"]
        if not running:
            return frozenset()  # no lease to read
        return cut_short(running, await conducted_runs(self._app.store))

    def judge(
        self, records: Iterable[Mapping[str, Any]], cut: frozenset[str] = frozenset()
    ) -> frozenset[str]:
        """Judge the agents among `records` (`judge_liveness`; `cut`: those of the runs cut
        short); what the answer varies with ("<id>=<status>" of each judged otherwise)."""
        config = self._app.config
        now, host = time.time(), this_host()
        statuses = {}
        for r in records:
            judged = judge_liveness(
                r, now=now, stale_after=config.stale_after_s, host=host, cut=cut
            )
            if judged is not None:
                statuses[r["id"]] = judged
                self.logged[r["id"]] = r["status"]
        self.statuses = statuses
        return frozenset(f"{agent_id}={status}" for agent_id, status in statuses.items())

    def card(self, card: dict[str, Any]) -> dict[str, Any]:
        """`card` with its status as judged now (a copy when judged otherwise)."""
        status = None if self.statuses is None else self.statuses.get(card["id"])
        return judged_card(card, status)


async def list_agents(request: Request) -> Response:
    """`GET /v1/agents`: agent cards, filtered and paged."""
    app = services(request)
    q = parse_query(AgentsQuery, request, lists=("status", "agent_id"))
    judged = _Judged(app)

    async def render(at: int | None) -> Answer:
        _check_changed_after(app, q, at)
        cards, count, next_cursor = await _page_of(
            app, "agents", at, _agent_filter(q, judged.statuses), AgentsProjection,
            AgentsProjection.record_view, q.after, q.limit,
        )  # fmt: skip

        def make() -> dict[str, Any]:
            agents = [judged.card(a) for a in cards()]
            return {"count": count, "agents": agents, "next": next_cursor}

        return Answer(AgentPage, make)

    return await _respond(request, app, q, render, judged)


async def get_agent(request: Request) -> Response:
    """`GET /v1/agents/{agent_id}`: one agent card."""
    app = services(request)
    agent_id = check_id(request.path_params["agent_id"])
    q = parse_query(ViewQuery, request)
    judged = _Judged(app)

    async def render(at: int | None) -> Answer:
        projection = app.runner.projection("agents")
        if at is None:
            card = app.runner.agent(agent_id)
        elif isinstance(projection, AgentsProjection):
            card = projection.agent_view(await _state(app, "agents", at), agent_id)
        else:
            view = await _view(app, "agents", at)
            card = next((a for a in view["agents"] if a["id"] == agent_id), None)
        if card is None:
            raise AgentNotFound(agent_id)
        judged_card = judged.card(card)
        return Answer(AgentCard, lambda: judged_card)

    return await _respond(request, app, q, render, judged)


async def get_fleet(request: Request) -> Response:
    """`GET /v1/fleet`: totals over the agents in scope."""
    app = services(request)
    q = parse_query(ScopedQuery, request, lists=("status",))
    judged = _Judged(app)

    async def render(at: int | None) -> Answer:
        view = await _view(app, "fleet", at)
        statuses = judged.statuses or {}
        if _scoped(q):
            cards, _, _ = await _page_of(
                app, "agents", at, _agent_filter(q, statuses), AgentsProjection,
                lambda r: judged.card(AgentsProjection.record_view(r)),
            )  # fmt: skip
            with gc_paused():  # note 3: the cards are made, counted and let go in it
                view = fleet_totals(cards(), view["events"])
        elif statuses:  # the log's counts, each judged session moved to its status now
            by_status = dict(view["agents"]["by_status"])
            for agent_id, status in statuses.items():
                by_status[judged.logged[agent_id]] -= 1
                by_status[status] = by_status.get(status, 0) + 1
            active = sum(n for s, n in by_status.items() if s in ACTIVE_STATUSES)
            view = {**view, "agents": {**view["agents"], "by_status": by_status, "active": active}}
        return Answer(FleetTotals, lambda: view)

    return await _respond(request, app, q, render, judged)


async def get_graph(request: Request) -> Response:
    """`GET /v1/graph`: the dependency graph of the agents in scope."""
    app = services(request)
    q = parse_query(GraphQuery, request, lists=("status",))
    runner = app.runner
    judged = _Judged(app)

    async def render(at: int | None) -> Answer:
        projection = runner.projection("graph")
        if not (_scoped(q) or q.latest_runs) or not isinstance(projection, GraphProjection):
            view = await _view(app, "graph", at)
        else:
            state = await _state(app, "graph", at)
            view = projection.scoped_view(
                state,
                run_id=q.run_id,
                agent_id=q.agent_id,
                statuses=q.status,
                role=q.role,
                latest_runs=q.latest_runs,
                judged=judged.statuses,
            )
        if judged.statuses:  # the nodes say what the cards say now (note 5)
            view = {**view, "nodes": [judged.card(n) for n in view["nodes"]]}
        return Answer(Graph, lambda: view)

    return await _respond(request, app, q, render, judged)


async def get_board(request: Request) -> Response:
    """`GET /v1/board`: the tasks in scope, in all six columns."""
    app = services(request)
    q = parse_query(BoardQuery, request)

    def keep(t: Mapping[str, Any]) -> bool:
        return (
            (q.run_id is None or t["run_id"] == q.run_id)
            and (q.agent_id is None or t["assignee"] == q.agent_id)
            # A task's card changes when it is created or moved: its history's last entry.
            and (q.changed_after is None or t["history"][-1]["position"] > q.changed_after)
        )

    async def render(at: int | None) -> Answer:
        _check_changed_after(app, q, at)
        if q.run_id is None and q.agent_id is None and q.changed_after is None:
            whole = await _view(app, "board", at)
            return Answer(Board, lambda: whole)
        if isinstance(app.runner.projection("board"), BoardProjection):
            # Cut from the records, only the kept tasks' cards made (note 2).
            records = (await _state(app, "board", at))["tasks"].values()
            with gc_paused():  # note 3
                tasks = [BoardProjection.task_view(t) for t in records if keep(t)]
        else:
            view = await _view(app, "board", at)
            tasks = [t for c in view["columns"] for t in c["tasks"] if keep(t)]
        columns = [
            {"name": name, "tasks": [t for t in tasks if t["column"] == name]} for name in COLUMNS
        ]
        return Answer(Board, lambda: {"count": len(tasks), "columns": columns})

    return await _respond(request, app, q, render)


def _run_filter(
    q: RunsQuery, live: frozenset[str] | None = None
) -> Callable[[Mapping[str, Any]], bool]:
    runs = frozenset(q.run_id)

    def status(r: Mapping[str, Any]) -> str:
        if live is not None and r["status"] == "running" and r["id"] not in live:
            return "interrupted"
        return str(r["status"])

    def keep(r: Mapping[str, Any]) -> bool:
        return (
            (not runs or r["id"] in runs)
            and (q.agent_id is None or q.agent_id in r["agents"])
            and (not q.status or status(r) in q.status)
            and (q.changed_after is None or r["position"] > q.changed_after)
        )

    return keep


async def list_runs(request: Request) -> Response:
    """`GET /v1/runs`: runs, filtered and paged."""
    app = services(request)
    q = parse_query(RunsQuery, request, lists=("status", "run_id"))
    conducted = _Conducted(app)

    async def render(at: int | None) -> Answer:
        _check_changed_after(app, q, at)
        now = conducted.ids  # None for a past position: as the log had it (note 4)
        cards, count, next_cursor = await _page_of(
            app, "runs", at, _run_filter(q, now), RunsProjection,
            lambda r: _conducted(RunsProjection.run_view(r), now), q.after, q.limit,
        )  # fmt: skip
        ours = isinstance(app.runner.projection("runs"), RunsProjection)

        def make() -> dict[str, Any]:
            runs = cards() if ours else [_conducted(r, now) for r in cards()]
            return {"count": count, "runs": runs, "next": next_cursor}

        return Answer(RunPage, make)

    return await _respond(request, app, q, render, conducted)


class _Conducted:
    """The ids of the runs a live process conducts now (their `run-<id>` lease; note 4),
    read when `_respond` calls it (only for a view now or at the head), else None."""

    def __init__(self, app: Services) -> None:
        self._app = app
        self.ids: frozenset[str] | None = None

    async def __call__(self) -> frozenset[str]:
        self.ids = await conducted_runs(self._app.store)
        return self.ids


def _conducted(run: dict[str, Any], live: frozenset[str] | None) -> dict[str, Any]:
    """`run`, "interrupted" when it is running and no live process conducts it (note 4)."""
    if live is not None and run["status"] == "running" and run["id"] not in live:
        return {**run, "status": "interrupted"}
    return run


async def get_run(request: Request) -> Response:
    """`GET /v1/runs/{run_id}`: one run."""
    app = services(request)
    run_id = check_id(request.path_params["run_id"], "run id")
    q = parse_query(ViewQuery, request)
    conducted = _Conducted(app)

    async def render(at: int | None) -> Answer:
        view = await _view(app, "runs", at)
        run = next((r for r in view["runs"] if r["id"] == run_id), None)
        if run is None:
            raise HTTPProblem(404, "Run not found", f"no run {run_id!r} in this log",
                              slug="run-not-found")  # fmt: skip
        card = _conducted(run, conducted.ids)
        return Answer(RunCard, lambda: card)

    return await _respond(request, app, q, render, conducted)


routes: list[BaseRoute] = [
    Route("/agents", list_agents, methods=["GET"]),
    Route("/agents/{agent_id}", get_agent, methods=["GET"]),
    Route("/fleet", get_fleet, methods=["GET"]),
    Route("/graph", get_graph, methods=["GET"]),
    Route("/board", get_board, methods=["GET"]),
    Route("/runs", list_runs, methods=["GET"]),
    Route("/runs/{run_id}", get_run, methods=["GET"]),
]

POLLING = (
    "Answers with `Fleet-Position` (the log position the view reflects) and an `ETag`; send "
    "the ETag back in `If-None-Match` for a 304 while the view is unchanged. `?at=POSITION` "
    "is the view as of that past position; `?min_position=N&wait=S` answers once the view "
    "reflects position N, or after S seconds (at most 30) with the view as it is."
)
"""What every view's description ends with."""

_PAGED = " Page with `limit`; pass `next` back as `after`."

operations: list[Operation] = [
    Operation(
        "GET", "/v1/agents", "List agents",
        "Every agent card (status, role, model, context, tokens, cost, files, tool calls), in "
        "the order they were created, filtered." + _PAGED + " " + POLLING,
        query=AgentsQuery, response=AgentPage, errors=(400,), conditional=True, tag="agents",
    ),
    Operation(
        "GET", "/v1/agents/{agent_id}", "Get one agent", "One agent card. " + POLLING,
        query=ViewQuery, response=AgentCard, errors=(400, 404),
        path_params={"agent_id": "the agent's id"}, conditional=True, tag="agents",
    ),
    Operation(
        "GET", "/v1/fleet", "Fleet totals",
        "Agents by status, tokens, cost, context in use, created and deleted, over the agents "
        "that match the filters (all by default), and the log's pace. " + POLLING,
        query=ScopedQuery, response=FleetTotals, errors=(400,), conditional=True, tag="views",
    ),
    Operation(
        "GET", "/v1/graph", "Dependency graph",
        "Who created whom, who waits on whom, which artifacts flow between agents, the "
        "bottlenecks and each run's critical path, over the agents that match the filters "
        "(edges between two of them). " + POLLING,
        query=GraphQuery, response=Graph, errors=(400,), conditional=True, tag="views",
    ),
    Operation(
        "GET", "/v1/board", "Task board",
        "Tasks by column (PLAN, BUILD, REVIEW, SHIP, DONE, FAILED; always all six), filtered "
        "by run and assignee; with `changed_after`, only the tasks created or moved since. "
        + POLLING,
        query=BoardQuery, response=Board, errors=(400,), conditional=True, tag="views",
    ),
    Operation(
        "GET", "/v1/runs", "List runs",
        "Every run (pattern, status, duration, cost, tokens, agents) in the order they "
        "started, filtered." + _PAGED + " " + POLLING,
        query=RunsQuery, response=RunPage, errors=(400,), conditional=True, tag="runs",
    ),
    Operation(
        "GET", "/v1/runs/{run_id}", "Get one run", "One run. " + POLLING,
        query=ViewQuery, response=RunCard, errors=(400, 404),
        path_params={"run_id": "the run's id"}, conditional=True, tag="runs",
    ),
]  # fmt: skip
