"""The patterns end to end on the sample repository, through the simulator and the real SDK."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from events import EventFilter
from runtime import (
    PATTERN_MAX_BYTES,
    InvalidAgentSpec,
    PatternError,
    Runtime,
    RuntimeOptions,
    load_pattern,
    open_runtime,
    prepare_workspace,
    run_orchestrator,
    run_pattern,
)

TASK = "rename `count_words` to `word_count` everywhere"


@pytest.fixture
async def rt(tmp_path: Path, workspace: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(
        RuntimeOptions(db=tmp_path / "fleet.db", workspace=workspace, env={})
    ) as runtime:
        yield runtime


def _sample_tests_pass(workspace: Path) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "unittest", "-q"], cwd=workspace, capture_output=True, text=True
    )
    return done.returncode == 0


def _grep(workspace: Path, word: str, *, include_docs: bool = True) -> list[str]:
    hits = []
    for path in sorted(workspace.rglob("*")):
        rel = path.relative_to(workspace).as_posix()
        if not path.is_file() or rel.startswith((".git/", ".fleet/")) or "__pycache__" in rel:
            continue
        if not include_docs and not rel.endswith(".py"):
            continue
        if re.search(rf"\b{re.escape(word)}\b", path.read_text(errors="replace")):
            hits.append(rel)
    return hits


async def _views(rt: Runtime) -> tuple[list[dict], dict, dict, dict]:
    await rt.runner.wait_for(await rt.store.head())
    return (
        rt.runner.view("agents")["agents"],
        rt.runner.view("graph"),
        rt.runner.view("board"),
        rt.runner.view("runs"),
    )


async def test_scout_plan_build_renames_in_code_and_sample_tests_pass(
    rt: Runtime, workspace: Path
) -> None:
    result = await run_pattern(rt.fleet, load_pattern("scout-plan-build"), TASK)

    assert result.status == "completed", result.error
    assert _grep(workspace, "count_words", include_docs=False) == []
    assert "textstats/counting.py" in _grep(workspace, "word_count")
    assert _sample_tests_pass(workspace)
    agents, graph, board, runs = await _views(rt)
    by_role = {a["role"] for a in agents}
    assert by_role == {"orchestrator", "scout", "planner", "builder"}
    scouts = [a for a in agents if a["role"] == "scout"]
    assert len(scouts) == 3
    assert {a["model"] for a in scouts} >= {"claude-haiku-5-5"}
    assert len({a["model"] for a in scouts}) == 2, "scouts run on different models"
    # Deleted when their phase was done, their work still in the projections.
    assert all(a["status"] == "deleted" for a in agents if a["role"] != "orchestrator")
    planner = next(a for a in agents if a["role"] == "planner")
    assert {".fleet/notes/relevant-files-1.md", ".fleet/notes/relevant-files-3.md"} <= set(
        planner["files_consumed"]
    )
    assert planner["files_produced"] == [".fleet/notes/plan.md"]
    # The graph: the orchestrator created everyone, waited on them, and artifacts flowed.
    edges = {(e["kind"], e["from"], e["to"]) for e in graph["edges"]}
    conductor = result.orchestrator_id
    assert all(("created", conductor, a["id"]) in edges for a in agents if a["id"] != conductor)
    assert any(kind == "waits_on" and src == conductor for kind, src, _ in edges)
    assert any(kind == "consumes" and src == planner["id"] for kind, src, _ in edges)
    (task,) = [t for c in board["columns"] for t in c["tasks"]]
    assert task["column"] == "DONE"
    assert [h["to"] for h in task["history"]][-2:] == ["BUILD", "DONE"]
    (run,) = runs["runs"]
    assert run["status"] == "completed"
    assert run["pattern"] == "scout-plan-build"


# The same task as a user types it, without backticks.
@pytest.mark.parametrize("task", [TASK, "Rename count_words to word_count everywhere."])
async def test_plan_build_review_ship_goes_back_to_build_once_then_commits(
    rt: Runtime, workspace: Path, task: str
) -> None:
    result = await run_pattern(rt.fleet, load_pattern("plan-build-review-ship"), task)

    assert result.status == "completed", result.error
    assert _grep(workspace, "count_words") == [], "the second build fixed the docs too"
    assert _sample_tests_pass(workspace)
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=workspace, capture_output=True, text=True
    ).stdout
    assert len(log.splitlines()) == 2
    assert "word_count" in log.splitlines()[0]
    _, _, board, _ = await _views(rt)
    (task,) = [t for c in board["columns"] for t in c["tasks"]]
    columns = [h["to"] for h in task["history"]]
    assert columns == [
        "PLAN",
        "PLAN",
        "BUILD",
        "REVIEW",
        "BUILD",
        "BUILD",
        "REVIEW",
        "SHIP",
        "DONE",
    ]
    assert task["returns"] == 1


async def test_scout_builder_changes_the_code(rt: Runtime, workspace: Path) -> None:
    result = await run_pattern(rt.fleet, load_pattern("scout-builder"), TASK)

    assert result.status == "completed", result.error
    assert _grep(workspace, "count_words", include_docs=False) == []
    assert _sample_tests_pass(workspace)


async def test_orchestrator_creates_four_scouts_sleeps_wakes_per_completion_and_deletes_all(
    rt: Runtime, workspace: Path
) -> None:
    result = await run_orchestrator(rt.fleet, TASK)

    assert result.status == "completed", result.error
    assert _grep(workspace, "count_words", include_docs=False) == []
    agents, graph, _, _ = await _views(rt)
    orchestrator = next(a for a in agents if a["role"] == "orchestrator")
    workers = [a for a in agents if a["parent_id"] == orchestrator["id"]]
    assert sorted(a["role"] for a in workers) == ["builder", "scout", "scout", "scout", "scout"]
    assert all(a["status"] == "deleted" for a in workers)
    events = await rt.store.read_all(where=EventFilter.of(agent_id=orchestrator["id"]))
    waits = [e for e in events if e.type == "AgentWaiting"]
    wakes = [e for e in events if e.type == "AgentWoke"]
    # Four scouts finishing at different times: at most one wake per completion (+1 for the builder).
    assert 2 <= len(wakes) <= 5
    assert len(waits) == len(wakes)
    assert all(w.data.reason == "changed" for w in wakes)  # type: ignore[union-attr]
    # It slept: no model call happened between a wait and its wake.
    types = [e.type for e in events]
    for start in (i for i, t in enumerate(types) if t == "AgentWaiting"):
        end = types.index("AgentWoke", start)
        assert "ModelResponded" not in types[start:end]
    # Its context stayed small: it never read a transcript.
    assert orchestrator["context"]["used"] < 20_000
    assert any(e["kind"] == "waits_on" and e["from"] == orchestrator["id"] for e in graph["edges"])


async def test_a_failing_planner_fails_the_run_and_keeps_the_scouts_work(
    rt: Runtime, workspace: Path, tmp_path: Path
) -> None:
    pattern = tmp_path / "fragile.toml"
    builtin = (Path(__file__).parents[2] / "runtime/patterns/scout-plan-build.toml").read_text()
    # One model call is not enough for the planner: it hits its turn limit.
    pattern.write_text(builtin.replace('role = "planner"', 'role = "planner"\nmax_turns = 1'))

    result = await run_pattern(rt.fleet, load_pattern(pattern), TASK)

    assert result.status == "failed"
    assert "plan" in (result.error or "")
    assert "turn limit" in (result.error or "")
    agents, _, board, runs = await _views(rt)
    scouts = [a for a in agents if a["role"] == "scout"]
    assert len(scouts) == 3
    assert all(a["files_produced"] for a in scouts)
    assert all((workspace / p).is_file() for a in scouts for p in a["files_produced"])
    (task,) = [t for c in board["columns"] for t in c["tasks"]]
    assert task["column"] == "FAILED"
    assert runs["runs"][0]["status"] == "failed"
    assert not any(a["role"] == "builder" for a in agents)


async def test_ship_on_a_workspace_that_is_not_git_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    plain = await prepare_workspace(tmp_path / "plain", git=False)
    async with open_runtime(RuntimeOptions(db=tmp_path / "f.db", workspace=plain, env={})) as rt:
        with pytest.raises(PatternError, match="needs a git repository"):
            await run_pattern(rt.fleet, load_pattern("plan-build-review-ship"), TASK)
        assert await rt.store.head() == 0


async def test_ship_in_a_repository_without_a_commit_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    """It ran and looped through reviews of an empty diff until it failed."""
    plain = await prepare_workspace(tmp_path / "plain", git=False)
    subprocess.run(["git", "init", "-q"], cwd=plain, check=True)
    async with open_runtime(RuntimeOptions(db=tmp_path / "f.db", workspace=plain, env={})) as rt:
        with pytest.raises(PatternError, match="has none yet: commit its files first"):
            await run_pattern(rt.fleet, load_pattern("plan-build-review-ship"), TASK)
        with pytest.raises(InvalidAgentSpec, match="task: must not be empty"):
            await run_pattern(rt.fleet, load_pattern("scout-plan-build"), " \n")
        assert await rt.store.head() == 0


async def test_ship_in_a_repository_with_uncommitted_changes_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    """The shipper commits with `git add -A`: a user's edit made before the run (and an
    untracked file) went into the run's commit, under the run's message."""
    repo = await prepare_workspace(tmp_path / "repo")
    with (repo / "README.md").open("a") as f:
        f.write("my work in progress\n")
    (repo / "scratch.txt").write_text("notes\n")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    async with open_runtime(RuntimeOptions(db=tmp_path / "f.db", workspace=repo, env={})) as rt:
        with pytest.raises(PatternError) as refused:
            await run_pattern(rt.fleet, load_pattern("plan-build-review-ship"), TASK)
        assert "has uncommitted changes (README.md, scratch.txt)" in str(refused.value)
        assert "commit or stash them first" in str(refused.value)
        assert await rt.store.head() == 0
    again = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    assert again.stdout == head.stdout, "nothing was committed"
    # A pattern that does not commit runs on them as before.
    async with open_runtime(RuntimeOptions(db=tmp_path / "f.db", workspace=repo, env={})) as rt:
        result = await run_pattern(rt.fleet, load_pattern("scout-plan-build"), TASK)
    assert result.status == "completed", result.error


def _one_step(*, prompt: str, outputs: str | None = None) -> str:
    """A pattern of one step with `prompt` (and one output), as TOML."""
    toml = f'name = "x"\n[[steps]]\nid = "a"\nrole = "scout"\nprompt = {json.dumps(prompt)}\n'
    return toml if outputs is None else toml + f"outputs = [{json.dumps(outputs)}]\n"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'name = "x"\n[[steps]]\nid = "a"\nrole = "scout"\nprompt = "p"\nafter = ["nope"]\n',
            "unknown steps",
        ),
        (
            'name = "x"\n[[steps]]\nid = "a"\nrole = "scout"\nprompt = "p"\nafter = ["b"]\n'
            '[[steps]]\nid = "b"\nrole = "scout"\nprompt = "p"\nafter = ["a"]\n',
            "cycle",
        ),
        (
            'name = "x"\n[[steps]]\nid = "a"\nrole = "scout"\nprompt = "{secret}"\n',
            "unknown template field",
        ),
        (
            'name = "x"\n[[steps]]\nid = "a"\nrole = "scout"\nprompt = "p"\ncolour = "red"\n',
            "Extra inputs",
        ),
        ("this is = not toml [", "not TOML"),
        # str.format follows attributes and keys of its arguments, and pads to any width:
        # a traceback at run time, or the interpreter's objects in a prompt.
        (_one_step(prompt="{task.__class__}"), "no attribute, index, conversion or format"),
        (_one_step(prompt="{outputs.__class__}"), "no attribute, index, conversion or format"),
        (_one_step(prompt="{outputs[a].upper}"), "no attribute, index, conversion or format"),
        (_one_step(prompt="{task:>999999999999}"), "no attribute, index, conversion or format"),
        (_one_step(prompt="{task!r}"), "no attribute, index, conversion or format"),
        (_one_step(prompt="a } b"), r"not a template: Single '\}'"),
        (_one_step(prompt="p", outputs="{index.real}.md"), "no attribute, index"),
        # The step's check looked for these outside the workspace.
        (_one_step(prompt="p", outputs="../../etc/passwd"), "a path inside the workspace"),
        (_one_step(prompt="p", outputs="/tmp/x.md"), "a path inside the workspace"),
        (_one_step(prompt="p", outputs="notes/../../x.md"), "a path inside the workspace"),
    ],
)
def test_invalid_pattern_files_are_refused_with_the_problem(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(toml)
    with pytest.raises(PatternError, match=message):
        load_pattern(path)


def test_a_pattern_with_several_mistakes_names_them_all_at_once(tmp_path: Path) -> None:
    """The README's promise: every problem named, not one an attempt."""
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "x"\n'
        '[[steps]]\nid = "a"\nrole = "scout"\nprompt = "{outputs[ghost]}"\nafter = ["b"]\n'
        '[[steps]]\nid = "b"\nrole = "scout"\nprompt = "p"\nafter = ["a", "nope"]\n'
    )
    with pytest.raises(PatternError) as raised:
        load_pattern(path)
    message = str(raised.value)
    assert "step 'a' reads outputs of unknown step 'ghost'" in message
    assert "step 'b' comes after unknown steps ['nope']" in message
    assert "steps form a cycle" in message


def test_a_pattern_too_large_for_its_run_is_refused_before_the_run(tmp_path: Path) -> None:
    """A pattern is kept whole in its run's RunStarted: a 3 MB prompt failed the run as it
    started ("RunStarted event ... is 3000453 bytes, over the limit"), after the live
    table was drawn. Refused as it loads now, by its file's size or its JSON's (a quote is
    two bytes there)."""
    path = tmp_path / "p.toml"
    path.write_text(_one_step(prompt="p" * PATTERN_MAX_BYTES))
    with pytest.raises(PatternError, match=r"over 262,144 bytes; a pattern is at most 262,144"):
        load_pattern(path)
    quotes = '"' * (PATTERN_MAX_BYTES * 2 // 3)  # a TOML literal string keeps them as they are
    path.write_text(f"name = 'x'\n[[steps]]\nid = 'a'\nrole = 'scout'\nprompt = '{quotes}'\n")
    assert path.stat().st_size < PATTERN_MAX_BYTES
    with pytest.raises(PatternError, match="bytes as JSON; a pattern is at most"):
        load_pattern(path)
    path.write_text(_one_step(prompt="p" * (PATTERN_MAX_BYTES // 2)))
    assert len(load_pattern(path).steps[0].prompt) == PATTERN_MAX_BYTES // 2


def test_a_pattern_path_that_is_no_regular_file_says_so(tmp_path: Path) -> None:
    for path, words in [(tmp_path, "not a regular file"), ("/dev/zero", "not a regular file"),
                        (tmp_path / "nope.toml", "no such file")]:  # fmt: skip
        with pytest.raises(PatternError, match=words):
            load_pattern(path)


def test_unknown_pattern_name_lists_the_built_in_ones() -> None:
    with pytest.raises(PatternError, match="scout-plan-build"):
        load_pattern("no-such-pattern")
