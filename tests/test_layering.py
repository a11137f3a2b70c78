"""Imports point one way, `api -> runtime -> (hooks, projections) -> events`, and seams stay public.

Read from the source (every `import` and `from ... import`, relative ones
resolved), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "events": {"events"},
    "projections": {"projections", "events"},
    "hooks": {"hooks", "events"},
    "runtime": {"runtime", "hooks", "projections", "events"},
    "api": {"api", "runtime", "hooks", "projections", "events"},
}


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "sample_repo" in parts:  # the agents' sample project, not fleet's code
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imported(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                yield node.lineno, node.module
                continue
            base = module.split(".")
            base = base if is_package else base[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join([*base, node.module] if node.module else base)
            if node.module:
                yield node.lineno, prefix
            else:  # `from . import x`: each name is a module of the package
                for alias in node.names:
                    yield node.lineno, f"{prefix}.{alias.name}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, path in _modules(package)
        for line, name in imported(module, path)
        if name.split(".")[0] in ALLOWED and name.split(".")[0] not in ALLOWED[package]
    ]
    assert wrong == []


def test_replay_uses_the_simulator_only_through_its_public_names() -> None:
    """The recorded answers plug into the simulator as a responder, not through its internals."""
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, path in _modules("runtime/replay")
        for line, name in imported(module, path)
        if name.startswith("runtime.simulator.")
    ]
    assert wrong == []


def test_the_timeline_fold_imports_only_events() -> None:
    path = ROOT / "projections" / "_timeline.py"
    fleet = {n.split(".")[0] for _, n in imported("projections._timeline", path)} & set(ALLOWED)
    assert fleet == {"events"}
