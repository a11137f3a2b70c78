"""`api.__all__` is exactly the public surface."""

from __future__ import annotations

from types import ModuleType

import api


def test_all_is_exactly_the_public_names() -> None:
    for name in api.__all__:  # `api` imports its names on first use (PEP 562)
        getattr(api, name)
    public = {
        name
        for name, value in vars(api).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and name not in ("annotations", "TYPE_CHECKING")
    }
    assert set(api.__all__) == public
    assert len(api.__all__) == len(set(api.__all__))
