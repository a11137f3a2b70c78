"""Patterns as declarative workflows: steps, their roles, order and hand-offs.

A pattern is a small graph of steps. Each step creates one or more agents of a
role, commands them with a prompt built from the run's task and the artifacts
of earlier steps, waits for them (the sleep pattern), and deletes them when
the phase is done. A review step may send the task back to an earlier step a
bounded number of times. Users write their own patterns as TOML files of the
same shape as the built-in ones (`runtime/patterns/*.toml`).

Prompt templates use `str.format` fields: `{task}` (the run's task), `{index}`
(1-based agent index within a step), `{outputs[STEP]}` (the artifacts that
step produced, comma-separated) and `{feedback}` (the last review's verdict).
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PatternError

__all__ = [
    "BUILTIN_PATTERNS",
    "PATTERN_MAX_BYTES",
    "PatternSpec",
    "ReviewLoop",
    "StepSpec",
    "load_pattern",
]

PATTERN_MAX_BYTES = 256 * 1024
"""The most a pattern may be, as its TOML file and as JSON: it is kept whole in its run's
first event (`RunStarted`, at most 1 MiB with the task), so a larger one would fail the
run as it starts."""

Column = Literal["PLAN", "BUILD", "REVIEW", "SHIP", "DONE", "FAILED"]
_ALLOWED_FIELDS = {"task", "index", "outputs", "feedback", "workspace"}
_TEMPLATE_FIELD = re.compile(r"task|index|feedback|workspace|outputs\[[a-z][a-z0-9_-]{0,31}\]")


class ReviewLoop(BaseModel):
    """What a failed review does: send the task back to `retry` at most `max_retries` times."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retry: str
    max_retries: int = Field(default=2, ge=0, le=10)
    # A reviewer's final text containing this marker approves; anything else rejects.
    approve_marker: str = "APPROVED"


class StepSpec(BaseModel):
    """One phase of a pattern."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    role: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    prompt: str
    after: list[str] = Field(default_factory=list)
    count: int = Field(default=1, ge=1, le=16)
    # One model per agent of the step (cycled when shorter than `count`); empty: the run's model.
    models: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    column: Column | None = None
    review: ReviewLoop | None = None
    # The step needs the workspace to be a git repository (e.g. ship makes a commit).
    requires_git: bool = False
    max_turns: int = Field(default=40, ge=1, le=500)
    # What runs the step's agents: "fleet" or "claude-code"; unset: the fleet's default.
    engine: Literal["fleet", "claude-code"] | None = None

    @field_validator("prompt", "outputs")
    @classmethod
    def _known_fields(cls, value: str | list[str]) -> str | list[str]:
        # Only the fields themselves and `outputs[STEP]`: str.format also follows `.attr` and
        # `[key]` on its arguments (`{task.__class__...}` reaches the interpreter's objects,
        # a traceback at run time) and pads to any width (`{task:>99999999999}`).
        for text in [value] if isinstance(value, str) else value:
            try:
                fields = list(string.Formatter().parse(text))
            except ValueError as e:  # "Single '}' encountered", "unmatched '{'"
                raise ValueError(f"not a template: {e} (write {{{{ and }}}} for braces)") from None
            for _, name, spec, conversion in fields:
                if name is None:
                    continue
                root = name.split("[", 1)[0].split(".", 1)[0]
                if root not in _ALLOWED_FIELDS:
                    raise ValueError(
                        f"unknown template field {{{name}}}; allowed: {sorted(_ALLOWED_FIELDS)}"
                    )
                if not _TEMPLATE_FIELD.fullmatch(name) or spec or conversion:
                    raise ValueError(
                        f"template field {{{name}{'!' + conversion if conversion else ''}"
                        f"{':' + spec if spec else ''}}}: a field is {{task}}, {{index}}, "
                        "{feedback}, {workspace} or {outputs[STEP]}, with no attribute, "
                        "index, conversion or format"
                    )
        return value

    @field_validator("outputs")
    @classmethod
    def _inside_the_workspace(cls, value: list[str]) -> list[str]:
        # The step's check looks for each file in the workspace: an absolute path or `..`
        # looked outside it, where an agent's file tools never write.
        for path in value:
            if path.startswith(("/", "~", "\\")) or ".." in Path(path).parts or not path.strip():
                raise ValueError(f"an output is a path inside the workspace, got {path!r}")
        return value


class PatternSpec(BaseModel):
    """A whole pattern: named steps in a dependency order with no cycle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    description: str = ""
    board: bool = False
    steps: list[StepSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_graph(self) -> PatternSpec:
        """Every problem of the steps' graph at once, not the first only."""
        ids = [step.id for step in self.steps]
        problems: list[str] = []
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            problems.append(f"duplicate step ids: {duplicates}")
        known = set(ids)
        for step in self.steps:
            unknown = [dep for dep in step.after if dep not in known]
            if unknown:
                problems.append(f"step {step.id!r} comes after unknown steps {unknown}")
            if step.review is not None and step.review.retry not in known:
                problems.append(f"step {step.id!r} retries unknown step {step.review.retry!r}")
            problems += [
                f"step {step.id!r} reads outputs of unknown step {name!r}"
                for name in _output_refs(step)
                if name not in known
            ]
        cycle = _find_cycle({step.id: step.after for step in self.steps})
        if cycle:
            problems.append(f"steps form a cycle: {' -> '.join(cycle)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def step(self, step_id: str) -> StepSpec:
        """The step named `step_id`. Raises `KeyError`."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def order(self) -> list[list[StepSpec]]:
        """Steps in waves: each wave's steps depend only on earlier waves (run in parallel)."""
        done: set[str] = set()
        waves: list[list[StepSpec]] = []
        remaining = list(self.steps)
        while remaining:
            wave = [s for s in remaining if all(dep in done for dep in s.after)]
            waves.append(wave)
            done.update(s.id for s in wave)
            remaining = [s for s in remaining if s.id not in done]
        return waves


def _output_refs(step: StepSpec) -> Iterable[str]:
    for _, name, _, _ in string.Formatter().parse(step.prompt):
        if name and name.startswith("outputs["):
            yield name[len("outputs[") :].split("]", 1)[0]


def _find_cycle(after: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in after.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if state.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in after:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _parse(data: dict[str, Any], origin: str) -> PatternSpec:
    try:
        spec = PatternSpec.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(pattern)'}: {err['msg']}"
            for err in e.errors()
        )
        raise PatternError(f"invalid pattern {origin}: {problems}") from e
    # A file under the limit may be over it as JSON: a quote in a TOML literal is two bytes.
    if (size := len(spec.model_dump_json().encode())) > PATTERN_MAX_BYTES:
        raise PatternError(_too_large(origin, f"{size:,} bytes as JSON"))
    return spec


def _too_large(origin: str, size: str) -> str:
    return (
        f"invalid pattern {origin}: {size}; a pattern is at most {PATTERN_MAX_BYTES:,} "
        "(its run's first event keeps it whole): shorten its prompts"
    )


def load_pattern(name_or_path: str | Path) -> PatternSpec:
    """Load a built-in pattern by name, or a user's pattern from a TOML file.

    Raises `PatternError` with every problem found (unknown step, cycle, bad field).
    """
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_PATTERNS:
        return BUILTIN_PATTERNS[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(BUILTIN_PATTERNS))
        what = "not a regular file" if path.exists() else "no such file"
        raise PatternError(f"no pattern named {str(name_or_path)!r} (built in: {known}) and {what}")
    with path.open("rb") as f:  # never more than the limit read, whatever the file's size
        raw = f.read(PATTERN_MAX_BYTES + 1)
    if len(raw) > PATTERN_MAX_BYTES:
        raise PatternError(_too_large(str(path), f"over {PATTERN_MAX_BYTES:,} bytes"))
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PatternError(f"invalid pattern {path}: not TOML: {e}") from e
    return _parse(data, str(path))


def _load_builtins() -> dict[str, PatternSpec]:
    patterns: dict[str, PatternSpec] = {}
    for entry in resources.files("runtime").joinpath("patterns").iterdir():
        if entry.name.endswith(".toml"):
            spec = _parse(tomllib.loads(entry.read_text(encoding="utf-8")), entry.name)
            patterns[spec.name] = spec
    return patterns


BUILTIN_PATTERNS: dict[str, PatternSpec] = _load_builtins()
