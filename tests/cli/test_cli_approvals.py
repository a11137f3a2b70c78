"""`fleet approvals`, `fleet approve`, `fleet deny`: a person answers a call on hold from the shell."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from api.cli import main
from events import (
    AgentCommanded,
    AgentCreated,
    ApprovalDecided,
    ApprovalRequested,
    Meta,
    NewEvent,
    SQLiteEventStore,
)
from runtime import approval_stream

ROOT = Path(__file__).parents[2]


async def _seed(db: Path, *approvals: str) -> None:
    async with SQLiteEventStore(db) as store:
        meta = Meta(run_id="r1", agent_id="a1")
        events = [
            NewEvent(
                AgentCreated(agent_id="a1", name="cleaner-1", role="cleaner", model="m"), meta
            ),
            NewEvent(AgentCommanded(agent_id="a1", prompt="clean"), meta),
        ]
        for i, approval_id in enumerate(approvals):
            request = ApprovalRequested(
                approval_id=approval_id, agent_id="a1", tool_use_id=f"tu{i}", tool_name="Bash",
                tool_input={"command": "rm -rf build"}, reason="needs a person", timeout_s=600,
            )  # fmt: skip
            events.append(NewEvent(request, meta))
        await store.append("agent-a1", events)


async def _decision(db: Path, approval_id: str) -> ApprovalDecided:
    async with SQLiteEventStore(db) as store:
        [event] = await store.read_stream(approval_stream(approval_id))
    assert isinstance(event.data, ApprovalDecided)
    assert event.meta.run_id == "r1"
    return event.data


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_approvals_are_listed_then_answered_with_who_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "fleet.db"
    asyncio.run(_seed(db, "apr_one", "apr_two"))

    code, out, _ = run_cli(capsys, "approvals", "--db", str(db))
    assert code == 0
    assert "apr_one" in out and "apr_two" in out and "cleaner-1" in out and "Bash" in out

    code, out, _ = run_cli(
        capsys, "approve", "apr_one", "--db", str(db), "--reason", "fine", "--as", "alice"
    )
    assert (code, out.split(" (")[0]) == (0, "apr_one allowed by alice")
    code, out, _ = run_cli(
        capsys, "deny", "apr_two", "--db", str(db), "--reason", "not today", "--json"
    )
    assert code == 0
    assert json.loads(out)["decision"] == "deny"

    allowed = asyncio.run(_decision(db, "apr_one"))
    assert (allowed.decision, allowed.by, allowed.reason) == ("allow", "alice", "fine")
    denied = asyncio.run(_decision(db, "apr_two"))
    assert (denied.decision, denied.reason) == ("deny", "not today")
    assert denied.by.startswith("cli:")  # the login name by default

    code, out, _ = run_cli(capsys, "approvals", "--db", str(db), "--json")
    assert json.loads(out)["count"] == 0
    code, out, _ = run_cli(capsys, "approvals", "--all", "--db", str(db), "--json")
    assert [a["status"] for a in json.loads(out)["approvals"]] == ["allowed", "denied"]


def test_a_second_answer_or_an_unknown_id_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "fleet.db"
    asyncio.run(_seed(db, "apr_one"))
    assert run_cli(capsys, "approve", "apr_one", "--db", str(db), "--as", "alice")[0] == 0
    code, _, err = run_cli(capsys, "deny", "apr_one", "--db", str(db), "--reason", "late")
    assert code == 1
    assert "approval 'apr_one' is allowed by alice" in err
    code, _, err = run_cli(capsys, "approve", "apr_nope", "--db", str(db))
    assert code == 1
    assert "no approval 'apr_nope'" in err


def test_deny_needs_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "fleet.db"
    with pytest.raises(SystemExit):
        main(["deny", "apr_one", "--db", str(db)])
    # A blank reason tells the agent nothing: a usage error, and the call stays on hold.
    asyncio.run(_seed(db, "apr_one"))
    for blank in ("", "  \n"):
        with pytest.raises(SystemExit) as exit_info:
            main(["deny", "apr_one", "--db", str(db), "--reason", blank])
        assert exit_info.value.code == 2
        assert "--reason: must say why, not be blank" in capsys.readouterr().err
    code, out, _ = run_cli(capsys, "approvals", "--db", str(db), "--json")
    assert code == 0
    assert [a["id"] for a in json.loads(out)["approvals"]] == ["apr_one"]


TAKEN_BY_NEITHER = {
    "blank --as": (["--as", "  "], "--as: must name someone, not be blank"),
    "empty --as": (["--as", ""], "--as: must name someone, not be blank"),
    "--as too long": (["--as", "a" * 129], "--as: 129 characters: a name is at most 128"),
    "--reason too long": (
        ["--reason", "x" * 10_001],
        "--reason: 10001 characters: a reason is at most 10000",
    ),
}


@pytest.mark.parametrize(("argv", "said"), TAKEN_BY_NEITHER.values(), ids=TAKEN_BY_NEITHER.keys())
async def test_the_cli_refuses_the_answers_the_api_refuses_and_the_call_stays_on_hold(
    argv: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: `--as " "` recorded an approval "allowed by  ", and a 5,000-character
    `--as` or a 20,000-character reason went in, where `POST /v1/approvals/{id}` says 422."""
    from api import ApiConfig, serving

    db = tmp_path / "fleet.db"
    await _seed(db, "apr_one")
    with pytest.raises(SystemExit) as exit_info:
        main(["approve", "apr_one", "--db", str(db), *argv])
    assert exit_info.value.code == 2
    assert said in capsys.readouterr().err
    field = "who" if argv[0] == "--as" else "reason"
    async with (
        serving(ApiConfig(db=db, runtime=False)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        answered = await http.post(
            "/v1/approvals/apr_one", json={"decision": "allow", field: argv[1]}
        )
        assert answered.status_code == 422, answered.text
        pending = (await http.get("/v1/approvals")).json()["approvals"]
    assert [(a["id"], a["status"]) for a in pending] == [("apr_one", "pending")]


@pytest.mark.parametrize("columns", [80, 60, 40])
def test_the_approval_id_is_never_cut_however_narrow_the_terminal(
    columns: int, tmp_path: Path
) -> None:
    """Regression: at 80 columns the id came out as `apr_68f062a06…`, which `approve` refuses."""
    db = tmp_path / "fleet.db"
    ids = [f"apr_{uuid.uuid4().hex[:16]}" for _ in range(2)]  # as the runtime makes them
    asyncio.run(_seed(db, *ids))
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns)}
    shown = subprocess.run(
        [sys.executable, "-m", "api.cli", "approvals", "--db", str(db)],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()]
    assert [row[0] for row in rows if row and row[0].startswith("apr_")] == ids, shown.stdout


def test_markup_in_a_call_on_hold_is_shown_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: a `[/]` in a tool's input (a model's words) crashed the table."""
    db = tmp_path / "fleet.db"

    async def seed() -> None:
        async with SQLiteEventStore(db) as store:
            meta = Meta(run_id="r1", agent_id="a1")
            request = ApprovalRequested(
                approval_id="apr_one", agent_id="a1", tool_use_id="tu1", tool_name="Bash",
                tool_input={"command": "echo [/] [bold]x[/bold]"}, reason="why [/]",
                timeout_s=600,
            )  # fmt: skip
            await store.append("agent-a1", [
                NewEvent(AgentCreated(agent_id="a1", name="[red]a[/]", role="r", model="m"), meta),
                NewEvent(AgentCommanded(agent_id="a1", prompt="go"), meta),
                NewEvent(request, meta),
            ])  # fmt: skip

    asyncio.run(seed())
    code, out, err = run_cli(capsys, "approvals", "--db", str(db))
    assert code == 0, err
    for text in ("[red]a[/]", '"echo [/]', "[bold]x[/bold]", "why [/]"):
        assert text in out, out
    code, out, _ = run_cli(capsys, "approve", "apr_one", "--db", str(db), "--as", "[b]me[/]")
    assert (code, out.split(" (position")[0]) == (0, "apr_one allowed by [b]me[/]")
