"""Tools: the `Tool` protocol and the `Toolbox` an agent is given.

A tool is a name, a description, a pydantic input model (its JSON schema is the
Messages API's `input_schema`), a `kind` and an async call. The worker tools
(`_worker_tools.py`) have Claude Code's names and input shapes: Read, Write,
Edit, Glob, Grep, Bash. An orchestrator gets other tools (CRUD for agents) in
its own `Toolbox`; nothing here knows about them.

Notes (do not fix without reading this):
1. A tool reports an expected failure by raising `ToolError` (or a subclass):
   the toolbox turns it into an error result the model sees. Any other
   exception is a bug; the agent's tool-call step (`_tool_calls.py`) still
   shows it to the model as a tool error and logs its traceback, so no agent
   is left working by it.
2. A tool's `kind` says what a call does to the world: "read" (it only looks:
   running it again is harmless, it is idempotent), "write" (it changes files
   in a way that can be checked against the expected content) or "command"
   (anything may have happened). A tool without `kind` counts as "command".
   Resuming an interrupted call keys on it, never on tool names.
3. A tool may keep older names as `aliases` (old name -> a function turning
   the old input into its own): a call recorded under an old name (fleet's
   recordings before the tools took Claude Code's names) is run as the tool's
   own call. Aliases are never offered to the model. A translator raises
   `ValueError` for input it cannot translate (a field given under both its
   old and its new name): the call gets `ToolInputInvalid`, as for any bad input.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from events import EventModel, RecordedEvent

from ._workspace import Workspace
from .errors import ToolError, ToolInputInvalid

__all__ = ["InputTranslator", "Tool", "ToolContext", "ToolKind", "ToolResult", "Toolbox", "kind_of"]

ToolKind = Literal["read", "write", "command"]
"""What a call of a tool does to the world (module note 2)."""

InputTranslator = Callable[[Mapping[str, Any]], dict[str, Any]]
"""Turns the input of an alias (an older name) into the tool's own input (note 3).

Raises `ValueError` for input it cannot translate."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call produced: the text the model sees and the files it touched.

    `response` is the structured output a PostToolUse hook gets as
    `tool_response` (Claude Code's output object of the tool); None means the
    text is all there is.
    """

    content: str
    is_error: bool = False
    files_read: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()
    response: Mapping[str, Any] | None = None


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
    """A tool an agent can call (class attributes satisfy the three properties).

    It may also declare `kind` (a `ToolKind`, note 2) and `aliases` (note 3).
    """

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


def kind_of(tool: object) -> ToolKind:
    """A tool's declared kind; "command" (anything may have happened) when it declares none."""
    kind = getattr(tool, "kind", "command")
    if kind == "read":
        return "read"
    return "write" if kind == "write" else "command"


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
    """The tools one agent may call, by name, with their Messages API definitions.

    Every method that takes a name also takes a tool's alias (module note 3).
    """

    __slots__ = ("_aliases", "_definitions", "_tools")

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        self._aliases: dict[str, tuple[str, InputTranslator]] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self._tools[tool.name] = tool
        for tool in self._tools.values():
            aliases: Mapping[str, InputTranslator] = getattr(tool, "aliases", {})
            for alias, translate in aliases.items():
                if alias not in self._tools:
                    self._aliases[alias] = (tool.name, translate)
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
        return name in self._tools or name in self._aliases

    def resolve(self, name: str, raw: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(the tool's own name, its input) for a call named `name` (an alias is translated).

        Raises `ToolError` naming the tools there are, `ToolInputInvalid` for an alias's input
        that cannot be translated (note 3); the argument is never mutated.
        """
        if name in self._tools:
            return name, dict(raw)
        alias = self._aliases.get(name)
        if alias is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self._tools)}")
        own, translate = alias
        try:
            return own, translate(raw)
        except ValueError as e:
            raise ToolInputInvalid(own, str(e)) from None

    def get(self, name: str) -> Tool:
        """The tool `name` (or whose alias it is). Raises `ToolError` naming the tools there are."""
        tool = self._tools.get(name)
        if tool is None:
            own, _ = self.resolve(name, {})
            tool = self._tools[own]
        return tool

    def kind(self, name: str) -> ToolKind:
        """The kind of the tool `name` (module note 2). Raises `ToolError` for an unknown name."""
        return kind_of(self.get(name))

    def validate(self, name: str, raw: Mapping[str, Any]) -> BaseModel:
        """`raw` checked against the tool's input model. Raises `ToolError` / `ToolInputInvalid`.

        For an alias, `raw` is the alias's input: it is translated first.
        """
        own, tool_input = self.resolve(name, raw)
        try:
            return self._tools[own].input_model.model_validate(tool_input)
        except ValidationError as e:
            raise ToolInputInvalid(own, _validation_detail(e)) from None

    async def call(self, name: str, raw: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        """Validate `raw` and run the tool; a `ToolError` becomes an error result."""
        try:
            tool = self.get(name)
            return await tool(self.validate(name, raw), ctx)
        except ToolError as e:
            return ToolResult(str(e), is_error=True)
