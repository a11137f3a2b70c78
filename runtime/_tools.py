"""Tools: the `Tool` protocol, the `Toolbox` an agent is given, and the worker tools.

A tool is a name, a description, a pydantic input model (its JSON schema is the
Messages API's `input_schema`) and an async call. The worker tools run inside
the agent's workspace: read_file, write_file, edit_file, list_files, grep,
run_command. An orchestrator gets other tools (CRUD for agents) in its own
`Toolbox`; nothing here knows about them.

Notes (do not fix without reading this):
1. A tool reports an expected failure by raising `ToolError` (or a subclass):
   the toolbox turns it into an error result the model sees. Any other
   exception is a bug; the agent's tool-call step (`_tool_calls.py`) still
   shows it to the model as a tool error and logs its traceback, so no agent
   is left working by it.
2. `run_command` runs a shell in the workspace under a reaper process
   (`hooks.start_command`): when the command ends, times out, floods its output
   or is cancelled, every process it started is killed, `setsid` ones too. It
   is not a path sandbox: the command can reach outside the workspace like any
   shell. Confinement of paths is for the file tools.
3. The file tools do their work in `Sandbox` (`_sandbox.py`: paths walked
   without a check-then-use race, writes to fleet's control files, `.git`, the
   log and foreign hard links refused) and `grep` in `_search.py` (RE2, linear
   time, streamed, stopped at `MAX_GREP_SECONDS` or on cancellation), all in a
   thread; those modules know no tool names. `grep` and `list_files` skip hidden
   files and folders (`.git`, `.fleet`, ...) and `__pycache__` while walking, as
   ripgrep does; a hidden path named explicitly is searched.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from events import EventModel, RecordedEvent

from ._workspace import Workspace
from .errors import ToolError, ToolInputInvalid

__all__ = ["Tool", "ToolContext", "ToolResult", "Toolbox"]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call produced: the text the model sees and the files it touched."""

    content: str
    is_error: bool = False
    files_read: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Where and for whom a tool runs.

    `emit(data)` appends an event to the calling agent's own stream (with its
    meta, caused by the tool call): a tool must use it, never `store.append`
    on that stream, or the agent sees a version conflict. `extra` carries what
    non-worker tools need (e.g. the fleet an orchestrator's tools act on).
    """

    workspace: Workspace
    agent_id: str
    run_id: str | None = None
    parent_id: str | None = None
    emit: Callable[[EventModel], Awaitable[RecordedEvent]] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Tool(Protocol):
    """A tool an agent can call (class attributes satisfy the three properties)."""

    @property
    def name(self) -> str:
        """The name the model calls it by."""
        ...

    @property
    def description(self) -> str:
        """What it does, for the model."""
        ...

    @property
    def input_model(self) -> type[BaseModel]:
        """The pydantic model of its input; its JSON schema is the tool's `input_schema`."""
        ...

    async def __call__(self, input: Any, ctx: ToolContext) -> ToolResult:
        """Run with a validated `input`; raise `ToolError` to report a failure to the model."""
        ...


@functools.cache
def _schema_of(model: type[BaseModel]) -> str:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return json.dumps(schema)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The input_schema of a tool (built once per input model; a fresh copy each call)."""
    return json.loads(_schema_of(model))  # type: ignore[no-any-return]


def _validation_detail(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class Toolbox:
    """The tools one agent may call, by name, with their Messages API definitions."""

    __slots__ = ("_definitions", "_tools")

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self._tools[tool.name] = tool
        self._definitions = [
            {"name": t.name, "description": t.description, "input_schema": _schema(t.input_model)}
            for t in self._tools.values()
        ]

    @property
    def names(self) -> list[str]:
        """The tool names, in the order given."""
        return list(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        """The `tools` parameter of a Messages API request (a fresh list; safe to mutate)."""
        return [dict(d) for d in self._definitions]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool:
        """The tool `name`. Raises `ToolError` naming the tools there are."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self._tools)}")
        return tool

    def validate(self, name: str, raw: Mapping[str, Any]) -> BaseModel:
        """`raw` checked against the tool's input model. Raises `ToolError` / `ToolInputInvalid`."""
        tool = self.get(name)
        try:
            return tool.input_model.model_validate(raw)
        except ValidationError as e:
            raise ToolInputInvalid(name, _validation_detail(e)) from None

    async def call(self, name: str, raw: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        """Validate `raw` and run the tool; a `ToolError` becomes an error result."""
        try:
            tool = self.get(name)
            return await tool(self.validate(name, raw), ctx)
        except ToolError as e:
            return ToolResult(str(e), is_error=True)
