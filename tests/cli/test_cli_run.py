"""`fleet demo` and `fleet run` as a user runs them: a real process, the offline simulator."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import main
from events import Meta, NewEvent, RunStarted, SQLiteEventStore

FLEET = [sys.executable, "-m", "api.cli"]
ROOT = Path(__file__).parents[2]


def _fleet(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run(
        [*FLEET, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
    )


def test_demo_runs_scout_plan_build_offline_and_reports_what_changed(tmp_path: Path) -> None:
    done = _fleet("demo", "--latency", "0", cwd=tmp_path, env={"COLUMNS": "160"})

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "offline simulator" in out
    assert "textstats/counting.py" in out  # the diff stat
    assert "tests: passed" in out
    for name in ("scout-1", "scout-2", "scout-3", "plan", "build"):
        assert name in out
    assert "fleet totals" in out
    assert (tmp_path / ".fleet" / "fleet.db").is_file(), "the default log is .fleet/fleet.db"


def test_run_with_json_prints_a_report_a_script_can_read(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    db = tmp_path / "custom.db"
    demo = _fleet(
        "demo",
        "--workspace",
        str(workspace),
        "--db",
        str(db),
        "--json",
        "--latency",
        "0",
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stderr

    again = _fleet(
        "run", "rename `count_lines` to `line_count`", "--pattern", "scout-builder",
        "--workspace", str(workspace), "--json", cwd=tmp_path, env={"FLEET_DB": str(db)},
    )  # fmt: skip

    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["status"] == "completed"
    assert report["simulated"] is True
    assert report["log"] == str(db)
    assert [a["role"] for a in report["agents"]] == ["orchestrator", "scout", "builder"]
    # The tests are the builder's own last run of them, as it ran them (fleet runs none).
    builder = next(a for a in report["agents"] if a["role"] == "builder")
    tests = report["tests"]
    assert (tests["passed"], tests["agent_id"], tests["edits_after"]) == (True, builder["id"], 0)
    assert "unittest" in tests["command"] and "OK" in tests["summary"]
    assert tests["none_ran"] is False
    assert report["fleet"]["agents_created"] == 9  # six in the demo, three now
    assert "line_count" in (workspace / "textstats" / "counting.py").read_text()


@pytest.mark.parametrize("tests", ["pytest", "none"])
def test_a_pytest_repository_is_tested_with_pytest_and_no_tests_is_not_a_pass(
    tmp_path: Path, tests: str
) -> None:
    # The simulator's builder ran `python -m unittest` alone, which finds no test in a pytest
    # repository and exits 0: the summary said "tests: passed" of "Ran 0 tests". It now
    # runs pytest next, as a developer would; where there is no test at all the summary
    # says so, and the run still completes (no test is not a failing test).
    workspace = tmp_path / "repo"
    (workspace / "calc").mkdir(parents=True)
    (workspace / "calc" / "__init__.py").write_text("def add_numbers(a, b):\n    return a + b\n")
    if tests == "pytest":
        (workspace / "tests").mkdir()
        (workspace / "tests" / "test_calc.py").write_text(
            "from calc import add_numbers\n\n\ndef test_add():\n    assert add_numbers(2, 3) == 5\n"
        )
    # The agents' `python` is this interpreter, which has pytest.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = _fleet(
        "run", "rename the function add_numbers to add everywhere", "--pattern", "scout-builder",
        "--workspace", str(workspace), "--json", cwd=tmp_path, env={"PATH": path},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "completed"
    assert report["tests"]["command"] == "python -m pytest -q"
    if tests == "pytest":
        assert (report["tests"]["passed"], report["tests"]["none_ran"]) == (True, False)
        assert "1 passed" in report["tests"]["summary"]
        assert "Tests pass (1 passed" in report["summary"]
    else:
        assert report["tests"]["none_ran"] is True
        assert "no tests ran" in report["tests"]["summary"]
        assert "Tests none found" in report["summary"]
        again = _fleet(
            "run", "rename the function add to add_numbers everywhere", "--pattern",
            "scout-builder", "--workspace", str(workspace), cwd=tmp_path,
            env={"PATH": path, "COLUMNS": "160"},
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "tests: none ran: " in again.stdout and "tests: passed" not in again.stdout


def test_run_refuses_an_unknown_pattern_and_a_broken_log_clearly(tmp_path: Path) -> None:
    unknown = _fleet("run", "x", "--pattern", "nope", "--workspace", str(tmp_path), cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no pattern named 'nope'" in unknown.stderr

    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("hello, I am not a database\n" * 100)
    broken = _fleet("run", "x", "--db", str(not_a_db), "--workspace", str(tmp_path), cwd=tmp_path)
    assert broken.returncode == 1
    assert "not a fleet SQLite database" in broken.stderr
    assert not_a_db.read_text().startswith("hello"), "the file was left alone"

    blank = _fleet("run", "x", "--db", "", "--workspace", str(tmp_path), cwd=tmp_path)
    assert blank.returncode == 2  # it fell back to .fleet/fleet.db without a word
    assert "argument --db: is empty" in blank.stderr
    assert not (tmp_path / ".fleet").exists()


def test_a_pattern_that_cannot_run_here_is_refused_before_the_run_is_shown(
    tmp_path: Path,
) -> None:
    """A step's unknown model was found as the run began: its header and an empty live
    table were drawn first, and only then the error (nothing was written either way)."""
    pattern = tmp_path / "p.toml"
    pattern.write_text(
        'name = "p"\n[[steps]]\nid = "a"\nrole = "scout"\nmodels = ["gpt-4"]\nprompt = "{task}"\n'
    )
    db = tmp_path / "fleet.db"
    for argv, said in [
        (["--pattern", str(pattern)], "unknown model 'gpt-4'"),
        (["--pattern", "plan-build-review-ship"], "step 'ship' of plan-build-review-ship needs"),
        (["--model", "nope"], "unknown model 'nope'"),
    ]:
        refused = _fleet("run", "x", *argv, "--workspace", str(tmp_path), "--db", str(db),
                         cwd=tmp_path)  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.startswith(f"fleet: error: {said}"), refused.stderr
        assert "running" not in refused.stdout and "agent" not in refused.stdout, refused.stdout
    shown = _fleet("runs", "--db", str(db), "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["runs"] == []


def test_resume_with_nothing_unfinished_says_so(tmp_path: Path) -> None:
    demo = _fleet("demo", "--json", "--latency", "0", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr

    done = _fleet("resume", "--json", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"runs": [], "resumed": [], "statuses": {}}

    # The demo's run by name: refused before anything is shown (it printed the run's
    # header and agents first).
    ended = _fleet("resume", json.loads(demo.stdout)["run_id"], cwd=tmp_path)
    assert ended.returncode == 1
    assert "cannot be resumed: it has ended (completed)" in ended.stderr
    assert ended.stdout == ""


def test_abandon_of_a_missing_or_ended_run_says_it_cannot_be_abandoned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: it said the run 'cannot be resumed', of a command that abandons."""
    db = str(tmp_path / "fleet.db")
    demo = ["demo", "--workspace", str(tmp_path / "ws"), "--db", db, "--json", "--latency", "0"]
    assert main(demo) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]

    assert main(["abandon", "nope", "--db", db]) == 1
    err = capsys.readouterr().err
    assert err == "fleet: error: run 'nope' cannot be abandoned: there is no such run in the log\n"
    assert main(["abandon", run_id, "--db", db]) == 1
    err = capsys.readouterr().err
    assert f"run {run_id!r} cannot be abandoned: it has ended (completed)" in err
    # The id as its stream names it is the same run.
    assert main(["abandon", f"run-{run_id}", "--db", db]) == 1
    assert f"run {run_id!r} cannot be abandoned: it has ended" in capsys.readouterr().err
    assert main(["resume", f"run-{run_id}", "--db", db]) == 1
    assert f"run {run_id!r} cannot be resumed: it has ended" in capsys.readouterr().err


def test_abandon_takes_the_run_id_with_its_run_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted run (started, no process conducts it) abandoned as `run-<id>`."""
    db = tmp_path / "fleet.db"

    async def seed() -> None:
        async with SQLiteEventStore(db) as store:
            started = RunStarted(run_id="0a1b2c3d4e", task="t", pattern="scout-builder")
            await store.append("run-0a1b2c3d4e", [NewEvent(started, Meta(run_id="0a1b2c3d4e"))])

    asyncio.run(seed())
    monkeypatch.chdir(tmp_path)
    assert main(["abandon", "run-0a1b2c3d4e", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"abandoned": "0a1b2c3d4e"}
    assert main(["runs", "--db", str(db), "--json"]) == 0
    assert [r["status"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["failed"]


def test_run_without_a_workspace_outside_a_clean_git_repository_is_refused_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: `fleet run` without --workspace edited the current folder silently."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "rename `a` to `b`"]) == 1
    err = capsys.readouterr().err
    assert "give --workspace DIR" in err
    assert "not a git repository" in err

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "notes.txt").write_text("uncommitted\n")
    monkeypatch.chdir(repo)
    assert main(["run", "rename `a` to `b`"]) == 1
    assert "uncommitted changes" in capsys.readouterr().err

    assert main(["run", "x", "--workspace", str(tmp_path / "nowhere")]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["run", " \n ", "--workspace", str(tmp_path)]) == 1
    assert "the task is blank" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.db")), "nothing was written"


def test_demo_into_a_file_or_a_folder_that_is_not_empty_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: these ended in a traceback (NotADirectoryError, FileExistsError)."""
    (tmp_path / "afile").write_text("mine\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine\n")
    db = str(tmp_path / "fleet.db")
    for given, why in [
        ("afile", "Not a directory"),
        ("afile/sub", "Not a directory"),
        ("full", "exists and is not empty"),
    ]:
        assert main(["demo", "--workspace", str(tmp_path / given), "--db", db]) == 1
        err = capsys.readouterr().err
        assert err.startswith(
            f"fleet: error: cannot copy the sample repository to {tmp_path / given}"
        )
        assert why in err
    assert (tmp_path / "afile").read_text() == "mine\n"
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]
    assert not (tmp_path / "fleet.db").exists(), "nothing was written"


def test_a_run_in_a_repository_that_does_not_ignore_fleet_leaves_its_tree_clean(
    tmp_path: Path,
) -> None:
    """fleet's own files (its log, transcripts, notes) stay out of git: the ship step
    committed `.fleet/fleet.db` and the notes, and the next run there was refused."""
    repo = tmp_path / "repo"
    subprocess.run(["cp", "-r", str(ROOT / "runtime" / "sample_repo"), str(repo)], check=True)
    (repo / ".gitignore").write_text("__pycache__/\n")  # nothing about .fleet/
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True)
    task = "rename the function count_words to word_count everywhere"
    done = _fleet("run", "--pattern", "plan-build-review-ship", task, cwd=repo)
    assert done.returncode == 0, done.stderr

    assert (repo / ".fleet" / "fleet.db").is_file()
    shipped = subprocess.run(
        ["git", "show", "--name-only", "--format=", "HEAD"],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert shipped and not [name for name in shipped if name.startswith(".fleet")], shipped
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert status.stdout == ""  # so a next `fleet run` here is not refused


def test_rich_markup_in_the_task_and_in_file_paths_is_printed_as_text(tmp_path: Path) -> None:
    """Regression: a `[/]` in the task, or in a path the run changed, crashed `fleet run`
    with a rich MarkupError traceback (before the run, or in its end-of-run summary)."""
    repo = tmp_path / "R"
    shutil.copytree(ROOT / "runtime" / "sample_repo", repo)
    (repo / "lib[").mkdir()
    (repo / "lib[" / "]extra.py").write_text(
        'from textstats import count_words\n\nprint(count_words("a b"))\n'
    )
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *step]
        subprocess.run(git, cwd=repo, check=True)
    task = "rename `count_words` to `word_count` [/] [bold]now[/bold]"

    db = tmp_path / "my logs" / "a&b [x].db"  # the hint's commands quote it for the shell
    done = _fleet("run", task, "--workspace", str(repo), "--quiet", "--db", str(db),
                  cwd=tmp_path, env={"COLUMNS": "100"})  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert f"on: {task}\n" in out
    assert "lib[/]extra.py" in out.split("what changed")[1].split("tests")[0]  # the diff stat
    assert any(" wrote: " in line and "lib[/]extra.py" in line for line in out.splitlines())
    assert "word_count" in (repo / "lib[" / "]extra.py").read_text()
    # The commands to copy next work when pasted: one line each, the log quoted (an `&` in
    # it had sent a pasted `fleet replay` to the background, a space split it in two).
    run_id = re.search(r"\(run\s+(\w+),", out).group(1)  # type: ignore[union-attr]
    hint = next(line for line in out.splitlines() if line.startswith("next: "))
    replay = hint.removeprefix("next: ").split(" or ")[0]
    assert shlex.split(replay) == ["fleet", "replay", run_id, "--db", str(db)]


def test_a_runs_budget_counts_that_run_only_not_the_earlier_runs_in_its_log(
    tmp_path: Path,
) -> None:
    """Regression: on a log holding earlier runs' spending, `--budget-usd` counted the whole
    log and failed a run that had spent nothing yet."""
    db = str(tmp_path / "fleet.db")
    first = _fleet("demo", "--db", db, "--latency", "0", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    cost = sum(a["cost_usd"] for a in json.loads(first.stdout)["agents"])

    # One and a half runs' worth: the log passes it during the run, the run never does.
    budget = str(1.5 * cost)
    second = _fleet("demo", "--db", db, "--latency", "0", "--json", "--budget-usd", budget,
                    cwd=tmp_path)  # fmt: skip
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["status"] == "completed", report["error"]
    assert report["fleet"]["cost_usd"] > 1.5 * cost

    # Half a run's worth: the run stops, and says it is the run's budget.
    third = _fleet("demo", "--db", db, "--latency", "0", "--json", "--budget-usd", str(cost / 2),
                   cwd=tmp_path)  # fmt: skip
    assert third.returncode == 1
    report = json.loads(third.stdout)
    assert f"run {report['run_id']} cost_usd budget exceeded" in report["error"]


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--budget-usd", "-0.05", "must be more than 0, not -0.05"),
        ("--budget-tokens", "-1", "must be more than 0, not -1"),
        ("--agent-budget-usd", "0", "must be more than 0, not 0"),
        ("--agent-budget-tokens", "1.5", "'1.5' is not a whole number"),
        ("--agent-context-percent", "120", "must be more than 0 and at most 100, not 120"),
        ("--max-agents", "0", "must be more than 0, not 0"),
        ("--budget-usd", "nan", "'nan' is not a finite number"),
        ("--latency", "-1", "must be 0 or more, not -1"),
    ],
)
@pytest.mark.parametrize("command", ["run", "demo", "resume"])
def test_a_limit_that_cannot_be_met_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, option: str, value: str,
    said: str,
) -> None:  # fmt: skip
    task = ["x", "--workspace", str(tmp_path)] if command == "run" else []
    db = tmp_path / "fleet.db"
    with pytest.raises(SystemExit) as refused:
        main([command, *task, "--db", str(db), f"{option}={value}"])
    assert refused.value.code == 2
    assert f"fleet {command}: error: argument {option}: {said}" in capsys.readouterr().err
    assert not db.exists()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # A NaN lease: a ValueError traceback; infinity: a dead worker's agents kept forever.
        (["worker", "--lease-ttl", "nan"], "argument --lease-ttl: 'nan' is not a finite number"),
        (["worker", "--lease-ttl", "inf"], "argument --lease-ttl: 'inf' is not a finite number"),
        (["worker", "--capacity", "0"], "argument --capacity: must be more than 0, not 0"),
        # 0.0001 s: renewed every 33 µs, lost on any pause (agents flapping between workers).
        (["worker", "--lease-ttl", "0.5"], "argument --lease-ttl: must be at least 1, not 0.5"),
        (["worker", "--latency", "nan"], "argument --latency: 'nan' is not a finite number"),
        (["simulator", "--latency", "inf"], "argument --latency: 'inf' is not a finite number"),
        (["simulator", "--port", "99999"], "argument --port: '99999' is not a port (0 to 65535)"),
        (["otel", "export", "r", "--timeout", "nan"], "argument --timeout: 'nan' is not a finite"),
        (["otel", "export", "r", "--max-content-chars", "0"], "must be more than 0, not 0"),
    ],
)
def test_a_number_no_command_can_use_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    db = tmp_path / "fleet.db"
    with pytest.raises(SystemExit) as refused:
        main([*argv, "--db", str(db)] if argv[0] != "simulator" else argv)
    assert refused.value.code == 2
    assert said in capsys.readouterr().err
    assert not db.exists()


@pytest.mark.parametrize("command", ["worker", "serve", "chat"])
def test_a_workspace_that_is_not_a_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """Opening the runtime makes `.fleet/` in the workspace: a mistyped `--workspace`
    became a new folder tree (the worker then drove agents in it), a file a traceback."""
    db, afile = tmp_path / "fleet.db", tmp_path / "notes.txt"
    afile.write_text("notes")
    for given, said in ((tmp_path / "typo" / "repo", "no such folder"), (afile, "not a folder")):
        with pytest.raises(SystemExit) as refused:
            main([command, "--workspace", str(given), "--db", str(db)])
        assert refused.value.code == 2
        assert f"argument --workspace: {said}: {given}" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
    assert not db.exists()


def test_what_changed_counts_the_runs_changes_only(tmp_path: Path) -> None:
    """A workspace with uncommitted edits: they were listed as the run's; and outside git
    the summary said '(no change)' whatever the agents wrote."""
    repo = tmp_path / "repo"
    subprocess.run(["cp", "-r", str(ROOT / "runtime" / "sample_repo"), str(repo)], check=True)
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True)
    readme = repo / "README.md"
    readme.write_text(readme.read_text() + "\nA note of mine, not committed.\n")
    task = "rename `count_lines` to `line_count`"
    done = _fleet("run", task, "--pattern", "scout-builder", "--workspace", str(repo), "--json",
                  "--db", str(tmp_path / "f.db"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    diffstat = json.loads(done.stdout)["diffstat"]
    assert "counting.py" in diffstat and "README.md" not in diffstat, diffstat
    assert diffstat.startswith(" "), diffstat  # as git prints it

    plain = tmp_path / "plain"
    subprocess.run(["cp", "-r", str(ROOT / "runtime" / "sample_repo"), str(plain)], check=True)
    done = _fleet("run", task, "--pattern", "scout-builder", "--workspace", str(plain),
                  "--db", str(tmp_path / "g.db"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "(no change)" not in done.stdout
    assert "no git commit to compare with" in done.stdout
