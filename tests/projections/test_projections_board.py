"""The task board: plan, build, review, ship, with a review that fails once."""

from __future__ import annotations

import logging

import pytest
from pj_helpers import Timeline, at, review_fails_once

from events import TaskMoved
from projections import COLUMNS, BoardProjection

board = BoardProjection()


def columns(view: dict) -> dict[str, list[str]]:
    return {c["name"]: [t["id"] for t in c["tasks"]] for c in view["columns"]}


def test_the_board_has_all_six_columns_in_order_even_when_empty() -> None:
    view = board.view(board.initial())

    assert [c["name"] for c in view["columns"]] == list(COLUMNS)
    assert view["count"] == 0


def test_a_task_whose_review_failed_once_ends_done_with_its_whole_history() -> None:
    view = review_fails_once(Timeline()).view(board)

    assert columns(view) == {
        "PLAN": ["favicon"],
        "BUILD": [],
        "REVIEW": [],
        "SHIP": [],
        "DONE": ["titles"],
        "FAILED": [],
    }
    task = view["columns"][4]["tasks"][0]
    assert task["assignee"] == "shipper"
    assert task["artifacts"] == ["plan.md", "index.html", "about.html", "commit 1a2b3c"]
    assert task["returns"] == 1
    assert task["run_id"] == "r2"
    assert [(m["from"], m["to"]) for m in task["history"]] == [
        (None, "PLAN"),
        ("PLAN", "BUILD"),
        ("BUILD", "REVIEW"),
        ("REVIEW", "BUILD"),
        ("BUILD", "REVIEW"),
        ("REVIEW", "SHIP"),
        ("SHIP", "DONE"),
    ]
    assert task["history"][3]["reason"] == "title missing on /about"
    assert task["history"][3]["at"] == at(12)
    assert task["history"][3]["assignee"] == "builder"
    assert (task["created_at"], task["updated_at"]) == (at(0), at(17))


def test_after_the_failed_review_the_task_is_back_in_build_with_the_builder() -> None:
    tl = review_fails_once(Timeline())

    view = tl.view(board, until=5)

    assert columns(view)["BUILD"] == ["titles"]
    task = view["columns"][1]["tasks"][0]
    assert task["assignee"] == "builder"
    assert task["returns"] == 1


def test_moving_an_unknown_task_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tl = review_fails_once(Timeline())
    before = tl.view(board)
    tl.add(20, TaskMoved(task_id="nope", column="DONE"))

    with caplog.at_level(logging.WARNING):
        after = tl.view(board)

    assert after == before
    assert "no task 'nope'" in caplog.text
