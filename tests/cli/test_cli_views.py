"""`fleet agents`, `fleet board`, `fleet runs` and `fleet events` against a real log.

The log is filled once per module by a real plan-build-review-ship run (the
runtime, through the simulator) plus a few events a pattern run rarely
writes (a blocked tool call, a failed agent, a task in FAILED).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest
from log_support import cut_short
from postgres_support import (
    POSTGRES_URL,
    drop_postgres_schemas,
    postgres_log_url,
    postgres_or_skip,
    run_in_thread,
)
from rich.console import Console

from api.cli import main
from api.cli._render import render_fleet
from events import (
    AgentCreated,
    AgentFailed,
    HookInvoked,
    Meta,
    NewEvent,
    RunStarted,
    SQLiteEventStore,
    TaskCreated,
    TaskMoved,
    ToolCallCompleted,
    ToolCallRequested,
)
from projections import ProjectionRunner
from runtime import RuntimeOptions, load_pattern, open_runtime, prepare_workspace, run_pattern

REPO_ROOT = Path(__file__).resolve().parents[2]
TASK = "rename `count_words` to `word_count` everywhere"
EXTRA_RUN = "run-extra01"
GUARDED = "guarded-7f3e"


async def _fill(db: Path, workspace: Path) -> str:
    await prepare_workspace(workspace)
    async with open_runtime(RuntimeOptions(db=db, workspace=workspace, env={})) as rt:
        result = await run_pattern(rt.fleet, load_pattern("plan-build-review-ship"), TASK)
        assert result.status == "completed", result.error
    meta = Meta(run_id=EXTRA_RUN, agent_id=GUARDED)
    async with SQLiteEventStore(db) as store:
        await store.append(f"run-{EXTRA_RUN}", [NewEvent(RunStarted(run_id=EXTRA_RUN, task="docs"),
                                                         Meta(run_id=EXTRA_RUN))])  # fmt: skip
        await store.append(f"agent-{GUARDED}", [
            NewEvent(AgentCreated(agent_id=GUARDED, name="guarded", role="builder",
                                  model="claude-haiku-4-5"), meta),
            NewEvent(ToolCallRequested(agent_id=GUARDED, tool_use_id="tu1", name="Bash",
                                       input={"command": "rm -rf /"}), meta),
            NewEvent(HookInvoked(point="PreToolUse", kind="command", agent_id=GUARDED,
                                 tool_use_id="tu1", decision="deny", reason="destructive"), meta),
            NewEvent(ToolCallCompleted(agent_id=GUARDED, tool_use_id="tu1", name="Bash",
                                       result="blocked: destructive", is_error=True,
                                       blocked=True), meta),
            NewEvent(AgentFailed(agent_id=GUARDED, error="gave up after a blocked call"), meta),
        ])  # fmt: skip
        board_meta = Meta(run_id=EXTRA_RUN)
        await store.append("task-docs", [
            NewEvent(TaskCreated(task_id="docs", title="Write the docs"), board_meta),
            NewEvent(TaskMoved(task_id="docs", column="FAILED", reason="agent failed"), board_meta),
        ])  # fmt: skip
    return result.run_id


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A log with a real pattern run and a guarded, failed agent: (path, the pattern's run id)."""
    root = tmp_path_factory.mktemp("cli-views")
    db = root / "fleet.db"
    run_id = asyncio.run(_fill(db, root / "workspace"))
    return db, run_id


def _views(db: Path, *names: str, at: int | None = None) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with SQLiteEventStore(db) as store, ProjectionRunner(store) as runner:
            if at is None:
                return {name: runner.view(name) for name in names}
            return {name: await runner.view_at(name, at) for name in names}

    return asyncio.run(read())


def _head(db: Path) -> int:
    async def read() -> int:
        async with SQLiteEventStore(db) as store:
            return await store.head()

    return asyncio.run(read())


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_agents_json_is_the_agents_view(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, run_id = filled
    code, out, _ = run_cli(capsys, "agents", "--db", str(db), "--json")
    assert code == 0
    assert json.loads(out) == _views(db, "agents")["agents"]
    roles = {a["role"] for a in json.loads(out)["agents"] if a["run_id"] == run_id}
    assert roles == {"orchestrator", "planner", "builder", "reviewer", "shipper"}


def test_agents_table_shows_each_agent_with_status_context_cost_and_tools(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = filled
    code, out, _ = run_cli(capsys, "agents", "--db", str(db))
    assert code == 0
    agents = _views(db, "agents")["agents"]["agents"]
    lines = out.splitlines()
    assert any(
        line.split()[:2] == ["agent", "id"] and "context" in line and "cost" in line
        for line in lines
    )
    rows = iter(lines)
    for agent in agents:  # in the view's order
        row = next(
            line for line in rows if line.split()[:3] == [agent["name"], agent["id"], agent["role"]]
        )
        assert agent["status"] in row
        assert f"${agent['cost_usd']:.4f}" in row
        assert f"{agent['context']['percent']:4.1f}%" in row
    guarded = next(line for line in lines if line.split()[:1] == ["guarded"])
    assert "failed" in guarded
    assert "(1 blocked)" in guarded
    assert "Bash blocked" in guarded
    assert f"{len(agents)} agents, at position {_head(db)} (head)" in out


def test_agents_filter_by_run_status_and_active(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = filled
    _, out, _ = run_cli(capsys, "agents", "--db", str(db), "--run", EXTRA_RUN, "--json")
    assert [a["id"] for a in json.loads(out)["agents"]] == [GUARDED]
    _, out, _ = run_cli(capsys, "agents", "--db", str(db), "--status", "deleted", "--json")
    deleted = json.loads(out)
    assert deleted["count"] == len(deleted["agents"]) > 0
    assert {a["status"] for a in deleted["agents"]} == {"deleted"}
    _, out, _ = run_cli(capsys, "agents", "--db", str(db), "--active")
    assert out.strip() == f"no agents (at position {_head(db)} (head))"


def test_the_agents_of_a_run_no_live_process_conducts_are_interrupted_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed while its builder worked and its orchestrator waited on it: `fleet
    agents` says interrupted, as `fleet runs` says of the run and `GET /v1/agents` of
    them; `--at` says the log's word."""
    db = tmp_path / "fleet.db"

    async def write() -> None:
        async with SQLiteEventStore(db) as store:
            await cut_short(store, "r9")

    asyncio.run(write())
    base = ["agents", "--db", str(db), "--json"]

    def statuses(*argv: str) -> list[str]:
        return [a["status"] for a in json.loads(run_cli(capsys, *base, *argv)[1])["agents"]]

    def last_call(*argv: str) -> str:
        builder = json.loads(run_cli(capsys, *base, *argv)[1])["agents"][0]
        return f"{builder['tool_calls']['last']['name']} {builder['tool_calls']['last']['status']}"

    assert statuses() == ["interrupted", "interrupted"]
    # The call it was making never ended: interrupted too, not "running" for ever.
    assert last_call() == "Bash interrupted"
    assert last_call("--at", str(_head(db))) == "Bash running"
    assert statuses("--status", "interrupted") == ["interrupted", "interrupted"]
    assert statuses("--active") == []
    assert statuses("--at", str(_head(db))) == ["working", "waiting"]
    _, table, _ = run_cli(capsys, "agents", "--db", str(db))
    builder = next(line for line in table.splitlines() if "builder" in line)
    assert "interrupted" in builder and "running" not in builder
    boss = next(line for line in table.splitlines() if "orchestrator" in line)
    assert "interrupted" in boss and " on 1" not in boss  # a wait cut short waits on nothing
    _, past, _ = run_cli(capsys, "agents", "--db", str(db), "--at", str(_head(db)))
    assert "waiting on 1" in next(line for line in past.splitlines() if "orchestrator" in line)


def test_a_run_is_named_with_or_without_its_run_prefix_everywhere(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: `--run run-<id>` (the README's example) matched nothing, silently."""
    db, run_id = filled
    for command in ("agents", "board", "events"):
        _, plain, _ = run_cli(capsys, command, "--db", str(db), "--run", run_id, "--json")
        code, prefixed, err = run_cli(
            capsys, command, "--db", str(db), "--run", f"run-{run_id}", "--json"
        )
        assert (code, err) == (0, "")
        assert prefixed == plain, command
    assert json.loads(prefixed.splitlines()[0])["meta"]["run_id"] == run_id
    _, agents, _ = run_cli(capsys, "agents", "--db", str(db), "--run", f"run-{run_id}")
    assert "planner" in agents and "guarded" not in agents
    # An id that is itself `run-...` is found too, as given or with the stream's prefix.
    _, extra, _ = run_cli(capsys, "agents", "--db", str(db), "--run", f"run-{EXTRA_RUN}")
    assert GUARDED in extra

    # The README's `fleet events -f --run run-<id>`: it starts with the run's last events.
    follow = subprocess.run(
        [sys.executable, "-m", "api.cli", "events", "--db", str(db), "-f", "--run",
         f"run-{run_id}", "--tail", "1", "--limit", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert follow.returncode == 0, follow.stderr
    assert "RunCompleted" in follow.stdout

    for command in ("agents", "board", "events"):
        code, out, err = run_cli(capsys, command, "--db", str(db), "--run", "run-nope")
        assert (code, out) == (1, "")
        assert "no run 'run-nope' in this log" in err


def test_board_shows_tasks_by_column_and_filters_by_run(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, run_id = filled
    code, out, _ = run_cli(capsys, "board", "--db", str(db))
    assert code == 0
    header = next(line for line in out.splitlines() if "PLAN (" in line)
    for column in ("PLAN (0)", "BUILD (0)", "REVIEW (0)", "SHIP (0)", "DONE (1)", "FAILED (1)"):
        assert column in header
    assert "↺1" in out  # the review sent the task back once
    assert "Write the docs" in out
    _, out, _ = run_cli(capsys, "board", "--db", str(db), "--run", run_id)
    assert f"1 task, at position {_head(db)} (head)" in out  # not "1 tasks"

    code, out, _ = run_cli(capsys, "board", "--db", str(db), "--run", run_id, "--json")
    board = json.loads(out)
    assert board["count"] == 1
    done = next(c for c in board["columns"] if c["name"] == "DONE")
    assert [t["run_id"] for t in done["tasks"]] == [run_id]
    assert done["tasks"][0]["returns"] == 1


def test_runs_lists_pattern_status_duration_and_cost(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, run_id = filled
    code, out, _ = run_cli(capsys, "runs", "--db", str(db), "--json")
    assert code == 0
    runs = json.loads(out)
    # The extra run is "running" in the log, and no live process conducts it: interrupted.
    view = _views(db, "runs")["runs"]
    expected = [{**r, "status": "interrupted"} if r["id"] == EXTRA_RUN else r for r in view["runs"]]
    assert runs == {**view, "runs": expected}
    _, table, _ = run_cli(capsys, "runs", "--db", str(db))
    row = next(line for line in table.splitlines() if run_id in line)
    record = next(r for r in runs["runs"] if r["id"] == run_id)
    assert "plan-build-review-ship (sim)" in row
    assert "completed" in row
    assert f"${record['cost_usd']:.4f}" in row
    extra = next(line for line in table.splitlines() if EXTRA_RUN in line)
    assert "orchestrator" in extra
    assert "interrupted" in extra
    assert f"{len(runs['runs'])} runs, at position {_head(db)} (head)" in table


def test_runs_filter_by_status_as_judged_now_or_as_logged_then(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`fleet runs --status interrupted`: what `fleet resume` would take up, as the API's
    `GET /v1/runs?status=interrupted` answers it."""
    db, run_id = filled
    ids = lambda *argv: [r["id"] for r in json.loads(run_cli(capsys, *argv)[1])["runs"]]  # noqa: E731
    base = ["runs", "--db", str(db), "--json"]
    assert ids(*base, "--status", "interrupted") == [EXTRA_RUN]
    assert ids(*base, "--status", "completed") == [run_id]
    assert ids(*base, "--status", "completed", "--status", "interrupted") == [run_id, EXTRA_RUN]
    assert ids(*base, "--status", "running") == []  # no live process conducts it
    # In the past (`--at`), the log's word: running.
    assert ids(*base, "--status", "running", "--at", str(_head(db))) == [EXTRA_RUN]
    _, table, _ = run_cli(capsys, "runs", "--db", str(db), "--status", "failed")
    assert table.startswith("no runs (")
    with pytest.raises(SystemExit):
        run_cli(capsys, "runs", "--db", str(db), "--status", "finished")
    assert "invalid choice: 'finished'" in capsys.readouterr().err


def test_views_at_a_past_position_are_the_projections_then(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = filled
    past = 40
    _, out, _ = run_cli(capsys, "agents", "--db", str(db), "--at", str(past), "--json")
    assert json.loads(out) == _views(db, "agents", at=past)["agents"]
    _, out, _ = run_cli(capsys, "board", "--db", str(db), "--at", str(past))
    assert f"as of position {past}" in out


def test_events_print_one_readable_line_per_event_in_position_order(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = filled
    code, out, _ = run_cli(capsys, "events", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert [int(line.split()[0]) for line in lines] == list(range(1, _head(db) + 1))
    assert "RunStarted" in lines[0]
    assert "plan-build-review-ship (simulator)" in lines[0]
    blocked = next(line for line in lines if "ToolCallCompleted" in line and GUARDED in line)
    assert "Bash BLOCKED" in blocked
    assert "destructive" in blocked


def test_events_filters_tail_limit_and_json_lines(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, run_id = filled
    _, out, _ = run_cli(
        capsys, "events", "--db", str(db), "--type", "TaskMoved", "--run", run_id, "--json"
    )
    events = [json.loads(line) for line in out.splitlines()]
    assert events
    assert {e["type"] for e in events} == {"TaskMoved"}
    assert {e["meta"]["run_id"] for e in events} == {run_id}
    assert [e["data"]["column"] for e in events][-1] == "DONE"
    assert "BUILD" in [
        e["data"]["column"]
        for e in events[events.index(next(e for e in events if e["data"]["column"] == "REVIEW")) :]
    ]  # sent back from review

    _, out, _ = run_cli(
        capsys, "events", "--db", str(db), "--agent", GUARDED, "--tail", "2", "--json"
    )
    assert [json.loads(line)["type"] for line in out.splitlines()] == [
        "ToolCallCompleted",
        "AgentFailed",
    ]
    _, out, _ = run_cli(capsys, "events", "--db", str(db), "--after", "10", "--limit", "3")
    assert [int(line.split()[0]) for line in out.splitlines()] == [11, 12, 13]


def test_events_agent_takes_a_name_or_an_id_and_says_when_none_matches(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = filled
    _, by_id, _ = run_cli(capsys, "events", "--db", str(db), "--agent", GUARDED, "--json")
    code, by_name, err = run_cli(capsys, "events", "--db", str(db), "--agent", "guarded", "--json")
    assert code == 0 and by_name == by_id and by_id
    assert f"'guarded' is a name: showing agent {GUARDED}" in err
    code, out, err = run_cli(capsys, "events", "--db", str(db), "--agent", "nobody")
    assert (code, out) == (1, "")
    assert "no agent in this log has the id or the name 'nobody'" in err


def test_events_follow_prints_new_events_until_ctrl_c(
    filled: tuple[Path, str], tmp_path: Path
) -> None:
    """`events --follow --run R` prints R's new events as they are appended, and Ctrl-C ends it."""
    db = tmp_path / "follow.db"
    db.write_bytes(filled[0].read_bytes())
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "events", "--db", str(db), "--follow", "--run", EXTRA_RUN,
         "--tail", "1"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A suite started in the background (`.ci/run &`) ignores SIGINT, and so would the
        # child: give it Ctrl-C back, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "TaskMoved" in first
        assert "docs → FAILED" in first

        async def append() -> None:
            async with SQLiteEventStore(db) as store:
                other = Meta(run_id="run-other", agent_id="someone")
                await store.append(
                    "agent-someone", [NewEvent(AgentFailed(agent_id="someone", error="x"), other)]
                )
                await store.append("task-docs", [
                    NewEvent(TaskMoved(task_id="docs", column="PLAN", reason="retry"),
                             Meta(run_id=EXTRA_RUN))])  # fmt: skip

        asyncio.run(append())
        second = proc.stdout.readline()
        assert "TaskMoved" in second
        assert "docs → PLAN" in second
        assert "retry" in second
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)  # a loaded machine: generous, never a bound
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert rest == ""
    assert "Traceback" not in err


def _following(db: Path) -> subprocess.Popen[str]:
    """`fleet events --db DB --follow --tail 1`, its output unbuffered, read through pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "events", "--db", str(db), "--follow", "--tail", "1"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def test_events_follow_stops_when_the_log_is_deleted(
    filled: tuple[Path, str], tmp_path: Path
) -> None:
    """Regression: a log deleted while followed stayed open, and `events --follow` waited
    forever on a file no process could append to any more."""
    db = tmp_path / "follow.db"
    db.write_bytes(filled[0].read_bytes())
    proc = _following(db)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline()  # following now
        for path in tmp_path.glob("follow.db*"):
            path.unlink()
        rest, err = proc.communicate(timeout=60)  # a loaded machine: generous, never a bound
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, rest) == (1, "")
    assert err == f"fleet: error: the log {db} was deleted while it was followed: stopped\n"


def test_events_follow_stops_when_its_reader_goes_on_a_quiet_log(
    filled: tuple[Path, str],
) -> None:
    """Regression: `fleet events -f | head -1` on a log nobody appends to waited for the
    next event (a failed write) to learn that `head` had gone: it never ended."""
    proc = _following(filled[0])
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline()  # following now
        proc.stdout.close()  # `head -1` has its line and exits
        code = proc.wait(timeout=60)  # a loaded machine: generous, never a bound
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert (code, err) == (1, "")


# resume, abandon and approve open the log for writing: a mistyped --db became a new,
# empty log ("nothing to resume", exit code 0).
ON_A_LOG = ["agents", "board", "runs", "events", "approvals", "resume", "abandon run-x",
            "approve apr-x"]  # fmt: skip


@pytest.mark.parametrize("command", ON_A_LOG)
def test_commands_refuse_a_missing_log_and_create_nothing(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "fleet.db"
    code, out, err = run_cli(capsys, *command.split(), "--db", str(missing))
    assert code == 1
    assert f"no fleet log at {missing}" in err
    assert out == ""
    assert not missing.parent.exists()


@pytest.mark.parametrize("command", ON_A_LOG)
def test_commands_refuse_a_missing_postgresql_schema_and_create_nothing(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opening a PostgreSQL log for writing makes its schema: a mistyped `?schema=` was a
    new, empty log ("no agents", exit code 0) left in the database."""
    postgres_or_skip()
    schema = f"typo_{uuid4().hex[:10]}"
    try:
        code, out, err = run_cli(capsys, *command.split(), "--db", postgres_log_url(schema))
        assert code == 1
        assert "no fleet log at postgresql://" in err and schema in err
        assert out == ""
        assert not run_in_thread(_schema_exists(schema))
    finally:
        drop_postgres_schemas([schema])


@pytest.mark.parametrize("command", ["agents", "resume"])
def test_commands_name_a_missing_postgresql_database(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database that does not exist is not "no log: run `fleet demo`" (which could not
    make one either): the message says to create the database."""
    postgres_or_skip()
    url = f"{POSTGRES_URL.partition('?')[0].rsplit('/', 1)[0]}/nosuch_{uuid4().hex[:8]}"
    code, out, err = run_cli(capsys, *command.split(), "--db", url)
    assert (code, out) == (1, "")
    assert "does not exist: fleet makes its tables, not the database; create it first" in err
    assert "fleet demo" not in err


@pytest.mark.parametrize("command", ["agents", "approvals", "resume"])
def test_a_missing_log_named_with_a_password_is_shown_without_it(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The message reaches terminals and CI logs: the password stays out of it."""
    postgres_or_skip()
    schema = f"typo_{uuid4().hex[:10]}"
    parts = urlsplit(postgres_log_url(schema))
    user, _, host = parts.netloc.rpartition("@")
    url = urlunsplit(parts._replace(netloc=f"{user or 'root'}:hunter2@{host}"))
    try:
        code, _, err = run_cli(capsys, command, "--db", url)
        assert code == 1
        assert f"no fleet log at postgresql://{user or 'root'}:***@{host}" in err
        assert "hunter2" not in err
    finally:
        drop_postgres_schemas([schema])


async def _schema_exists(schema: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        found = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
    finally:
        await conn.close()
    return found is not None


def test_db_defaults_to_fleet_db_env(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _ = filled
    monkeypatch.setenv("FLEET_DB", str(db))
    code, out, _ = run_cli(capsys, "runs", "--json")
    assert code == 0
    assert json.loads(out)["count"] == 2


def test_a_position_past_the_head_is_a_clear_error(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = filled
    code, out, err = run_cli(capsys, "agents", "--db", str(db), "--at", "999999")
    assert code == 1
    assert out == ""
    assert "999999" in err
    assert str(_head(db)) in err


@pytest.mark.parametrize(
    "argv", [["--tail", "0"], ["--limit", "x"], ["--after", "-3"], ["--type", "Nope"]]
)
def test_bad_event_options_are_usage_errors(
    argv: list[str], filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["events", "--db", str(filled[0]), *argv])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


GONE_READER = [["agents", "--json"], ["runs", "--json"], ["events", "--json"],
               ["replay", "RUN", "--json"], ["export", "RUN", "-o", "-"]]  # fmt: skip


@pytest.mark.parametrize("argv", GONE_READER, ids=" ".join)
def test_output_into_a_pipe_whose_reader_went_away_ends_quietly(
    argv: list[str], filled: tuple[Path, str]
) -> None:
    """`fleet agents --json | head` on a fleet whose JSON passes a pipe's 64 KiB: the reader is
    gone, so exit code 1 and nothing on stderr (it was a BrokenPipeError traceback, and
    `export -o -` said `fleet: error: cannot write the export`)."""
    db, run_id = filled
    read, write = os.pipe()
    os.close(read)  # the reader has gone: the first write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "api.cli", *(run_id if a == "RUN" else a for a in argv),
             "--db", str(db)],
            cwd=REPO_ROOT, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")


def test_render_fleet_draws_totals_agents_and_board_for_one_run(filled: tuple[Path, str]) -> None:
    db, run_id = filled
    views = _views(db, "fleet", "agents", "board")
    console = Console(record=True, width=160, color_system=None)
    console.print(render_fleet(views, run_id=run_id))
    text = console.export_text()
    fleet = views["fleet"]
    assert text.startswith(
        f"fleet {fleet['agents']['active']} active / {fleet['agents']['total']} agents"
    )
    assert "shipper" in text
    assert "guarded" not in text
    assert "DONE (1)" in text
    assert "FAILED (0)" in text


HOSTILE = "evil \x1b]0;TITLE\x07 \x1b[2J\x1b[31mred\rX\bY \x9b31m"


async def _fill_hostile(db: Path) -> None:
    """A run whose task, agent, board and tool call carry terminal control sequences (a
    model's output or an imported run can hold any string)."""
    run_id, agent_id = "hostile01", "builder-hostile"
    meta = Meta(run_id=run_id, agent_id=agent_id)
    async with SQLiteEventStore(db) as store:
        await store.append(f"run-{run_id}", [
            NewEvent(RunStarted(run_id=run_id, task=HOSTILE, pattern="scout-builder"),
                     Meta(run_id=run_id)),
        ])  # fmt: skip
        await store.append(f"agent-{agent_id}", [
            NewEvent(AgentCreated(agent_id=agent_id, name="builder", role="builder",
                                  model="claude-haiku-4-5", task=HOSTILE), meta),
            NewEvent(ToolCallRequested(agent_id=agent_id, tool_use_id="tu1", name="Bash",
                                       input={"command": HOSTILE}), meta),
            NewEvent(ToolCallCompleted(agent_id=agent_id, tool_use_id="tu1", name="Bash",
                                       result=HOSTILE, is_error=True), meta),
            NewEvent(AgentFailed(agent_id=agent_id, error=HOSTILE), meta),
        ])  # fmt: skip
        await store.append(f"task-{run_id}", [
            NewEvent(TaskCreated(task_id=run_id, title=HOSTILE), Meta(run_id=run_id)),
        ])  # fmt: skip


@pytest.mark.parametrize(
    "command", ["events", "runs", "agents", "board", "replay hostile01", "approvals --all"]
)
def test_control_characters_from_the_log_are_shown_not_sent_to_the_terminal(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An escape sequence in a task retitled the terminal, cleared the screen or coloured
    what followed; a carriage return overwrote the line. Each prints as its symbol."""
    db = tmp_path / "fleet.db"
    asyncio.run(_fill_hostile(db))
    code, out, _ = run_cli(capsys, *command.split(), "--db", str(db))
    assert code == 0
    controls = [c for c in out if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]
    assert controls == []
    if command.split()[0] in ("events", "runs", "board", "replay"):  # they show the task
        assert "␛]0;TITLE" in out and "␛[2J" in out


def test_a_terminal_gets_richs_styles_but_none_of_the_texts_controls() -> None:
    from io import StringIO

    from rich.text import Text

    from api.cli._common import make_console

    file = StringIO()
    make_console(file=file, force_terminal=True, color_system="standard", width=200).print(
        Text(HOSTILE, style="bold")
    )
    written = file.getvalue()
    assert "\x1b[1m" in written  # rich's own bold
    assert "\x1b]0;" not in written and "\x07" not in written and "\x9b" not in written
    assert "evil ␛]0;TITLE ␛[2J␛[31mred" in written  # (rich drops BEL, CR and BS itself)


@pytest.mark.parametrize(
    "argv",
    [["agents", "--run", b"\xff"], ["replay", b"caf\xe9"], ["run", b"rename caf\xe9 to cafe"]],
)
def test_an_argument_that_is_not_utf8_is_a_usage_error(
    tmp_path: Path, argv: list[str | bytes]
) -> None:
    # Python hands such bytes over as lone surrogates: `fleet agents --run` and `fleet
    # replay` ended in a UnicodeEncodeError traceback, and no event can hold them.
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    environ["PYTHONPATH"] = str(Path(__file__).parents[2])
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *argv], cwd=tmp_path, env=environ,
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr
    assert b"is not valid UTF-8" in done.stderr
    assert not (tmp_path / ".fleet").exists(), "nothing was made"
