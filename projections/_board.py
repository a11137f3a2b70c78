"""The task board read model: tasks in columns PLAN, BUILD, REVIEW, SHIP, DONE, FAILED.

View shape (`BoardProjection.view`)::

    {"count": int,
     "columns": [{"name": "PLAN" | "BUILD" | "REVIEW" | "SHIP" | "DONE" | "FAILED",
                  "tasks": [task, ...]}, ...],     # always all six, in that order
     }

    task = {"id": str, "title": str, "column": str, "assignee": str | None,
            "artifacts": [str], "run_id": str | None,
            "created_at": iso, "updated_at": iso,
            "returns": int,                        # moves back to an earlier column
            "history": [{"from": str | None, "to": str, "at": iso, "position": int,
                         "assignee": str | None, "reason": str | None}]}

The first history entry is the creation (`from` is None). A TaskMoved whose
`assignee` is None keeps the current assignee; its artifacts are added to the
task's. Within a column, tasks are in the order they were created. A move of
an unknown task, or a second TaskCreated for one id, is logged and skipped.
"""

from __future__ import annotations

from typing import Any, TypedDict

from events import RecordedEvent, TaskCreated, TaskMoved

from ._base import FoldProjection, iso, report

__all__ = ["COLUMNS", "BoardProjection", "BoardState", "TaskRecord"]

COLUMNS = ("PLAN", "BUILD", "REVIEW", "SHIP", "DONE", "FAILED")
_ORDER = {column: i for i, column in enumerate(COLUMNS)}


class TaskRecord(TypedDict):
    """One task on the board (JSON data)."""

    id: str
    title: str
    column: str
    assignee: str | None
    artifacts: dict[str, None]
    run_id: str | None
    created_at: float
    updated_at: float
    returns: int
    history: list[dict[str, Any]]


class BoardState(TypedDict):
    """Tasks by id, in creation order."""

    tasks: dict[str, TaskRecord]


class BoardProjection(FoldProjection[BoardState]):
    """The plan-build-review-ship board with each task's agent, artifacts and moves."""

    name = "board"
    version = 1
    ignores = frozenset(
        {
            "ToolCallInterrupted",
            "RunStarted",
            "RunCompleted",
            "RunFailed",
            "AgentCreated",
            "AgentCommanded",
            "ModelResponded",
            "ToolCallRequested",
            "ToolCallCompleted",
            "HookInvoked",
            "ApprovalRequested",
            "ApprovalDecided",
            "AgentWaiting",
            "AgentWoke",
            "ContextCompacted",
            "AgentCompleted",
            "AgentFailed",
            "AgentDeleted",
            "ExternalHookReceived",
            "ReplayDiverged",
            "ChatMessagePosted",
            "TelemetryReceived",
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self.handlers[TaskCreated] = self._created
        self.handlers[TaskMoved] = self._moved

    def initial(self) -> BoardState:
        return {"tasks": {}}

    def view(self, state: BoardState) -> dict[str, Any]:
        columns: dict[str, list[dict[str, Any]]] = {column: [] for column in COLUMNS}
        for task in state["tasks"].values():
            columns[task["column"]].append(self.task_view(task))
        return {
            "count": len(state["tasks"]),
            "columns": [{"name": name, "tasks": tasks} for name, tasks in columns.items()],
        }

    @staticmethod
    def task_view(t: TaskRecord) -> dict[str, Any]:
        """The JSON of one task (new containers)."""
        return {
            "id": t["id"],
            "title": t["title"],
            "column": t["column"],
            "assignee": t["assignee"],
            "artifacts": list(t["artifacts"]),
            "run_id": t["run_id"],
            "created_at": iso(t["created_at"]),
            "updated_at": iso(t["updated_at"]),
            "returns": t["returns"],
            "history": [{**move, "at": iso(move["at"])} for move in t["history"]],
        }

    def _created(self, state: BoardState, event: RecordedEvent, d: TaskCreated) -> None:
        if d.task_id in state["tasks"]:
            report(self.name, event, "task %r already exists", d.task_id)
            return
        ts = self.ts(event)
        state["tasks"][d.task_id] = {
            "id": d.task_id,
            "title": d.title,
            "column": d.column,
            "assignee": d.assignee,
            "artifacts": {},
            "run_id": event.meta.run_id,
            "created_at": ts,
            "updated_at": ts,
            "returns": 0,
            "history": [_move(None, d.column, ts, event.position, d.assignee, None)],
        }

    def _moved(self, state: BoardState, event: RecordedEvent, d: TaskMoved) -> None:
        task = state["tasks"].get(d.task_id)
        if task is None:
            report(self.name, event, "no task %r was created", d.task_id)
            return
        ts = self.ts(event)
        previous = task["column"]
        if _ORDER[d.column] < _ORDER[previous]:
            task["returns"] += 1
        task["column"] = d.column
        if d.assignee is not None:
            task["assignee"] = d.assignee
        for path in d.artifacts:
            task["artifacts"][path] = None
        task["updated_at"] = ts
        task["history"].append(
            _move(previous, d.column, ts, event.position, task["assignee"], d.reason)
        )


def _move(
    source: str | None,
    target: str,
    at: float,
    position: int,
    assignee: str | None,
    reason: str | None,
) -> dict[str, Any]:
    return {
        "from": source,
        "to": target,
        "at": at,
        "position": position,
        "assignee": assignee,
        "reason": reason,
    }
