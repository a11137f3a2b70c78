"""Every error fleet raises on purpose answers as a problem of its own, never the generic 500.

The test finds every `FleetError` subclass that fleet's packages define (it
imports every module of them), raises each from a route of the real app, and
checks the answer: problem+json, the status and type the API's table gives
it, the error's message as the detail. A new error class that nobody mapped
fails here until it is given a status in `api/_problems.py`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import FleetApp
from api.errors import HTTPProblem
from events.errors import FleetError

PACKAGES = ("events", "projections", "hooks", "runtime", "api")
PROBLEM = "application/problem+json"
GENERIC = "urn:fleet:problem:internal-error"


def _import_every_module() -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            if module.name.rsplit(".", 1)[-1] != "__main__":
                importlib.import_module(module.name)


def _subclasses(cls: type[FleetError]) -> Iterator[type[FleetError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def fleet_errors() -> list[type[FleetError]]:
    """Every FleetError subclass defined in fleet's packages (not in tests), by name."""
    _import_every_module()
    ours = {c for c in _subclasses(FleetError) if c.__module__.split(".")[0] in PACKAGES}
    return sorted(ours, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _instance(cls: type[FleetError]) -> FleetError:
    """An instance with a plain message: each class's own arguments differ, the mapping does not."""
    error = cls.__new__(cls)
    Exception.__init__(error, f"a {cls.__name__} for the test")
    return error


ERRORS = fleet_errors()


def test_the_walk_finds_the_errors_of_every_package() -> None:
    """Guards the test itself: an import that failed silently would leave classes out."""
    found = {c.__module__.split(".")[0] for c in ERRORS}
    assert found == set(PACKAGES)
    names = {c.__name__ for c in ERRORS}
    assert {"VersionConflict", "RunNotFound", "HookConfigError", "ReplayImpossible"} <= names
    assert {"ModelCallFailed", "StepFailed", "InsecureServe", "ProjectionFailed"} <= names


@pytest.mark.parametrize(
    "cls", [c for c in ERRORS if not issubclass(c, HTTPProblem)], ids=lambda c: c.__name__
)
async def test_every_fleet_error_maps_to_a_problem_status(
    app: FleetApp, cls: type[FleetError]
) -> None:
    error = _instance(cls)

    async def fail(request: Request) -> Response:
        raise error

    app.router.routes.insert(0, Route("/boom", fail))
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/boom")

    assert response.headers["content-type"] == PROBLEM, response.text
    body = response.json()
    assert body["type"] != GENERIC, f"{cls.__module__}.{cls.__name__} has no problem status"
    assert body["type"].startswith("urn:fleet:problem:")
    assert body["status"] == response.status_code
    assert 400 <= response.status_code < 600
    assert body["detail"] == str(error)


async def test_an_http_problem_answers_with_the_status_it_carries(app: FleetApp) -> None:
    async def fail(request: Request) -> Response:
        raise HTTPProblem(418, "Teapot", "short and stout", slug="teapot")

    app.router.routes.insert(0, Route("/boom", fail))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/boom")
    assert response.status_code == 418
    assert response.json()["type"] == "urn:fleet:problem:teapot"
