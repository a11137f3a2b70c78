"""Each package's `__all__` is exactly its public surface (httpx's test_exported_members).

A public name is one defined or imported in the package's `__init__` that does
not start with an underscore, leaving out submodules, `annotations` (the
`from __future__` import) and `TYPE_CHECKING`. A package that is still a
placeholder (its `__init__` has no `__all__` and defines nothing public)
passes. A lazy package (`api`) is checked once every name of its `__all__` has
been imported.
"""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "events",
    "projections",
    "runtime",
    "runtime.simulator",
    "runtime.replay",
    "hooks",
    "api",
    "api.cli",
]


def public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name not in ("annotations", "TYPE_CHECKING")
        and not isinstance(value, types.ModuleType)
    }


def isort_order(name: str) -> tuple[int, str]:
    """RUF022's order: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_exactly_the_public_surface(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    if exported is None:
        assert public_names(module) == set(), f"{package} has public names but no __all__"
        return

    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    # A lazy package (PEP 562 `__getattr__`, as `api` is) defines a name on first use.
    resolved = {name: getattr(module, name) for name in exported}
    assert set(exported) == public_names(module)
    # Sorted either plainly or as ruff's RUF022 sorts (constants, classes, functions).
    assert list(exported) in (sorted(exported), sorted(exported, key=isort_order)), (
        f"{package}.__all__ is not sorted"
    )
    for name, value in resolved.items():
        assert value is not None, f"{package}.{name} is None"
