"""The offline Messages-API simulator: a server on loopback that the real SDK talks to.

    async with Simulator() as sim:
        client = AsyncAnthropic(base_url=sim.base_url, api_key="sim-offline")

It checks every request as the API does and answers from scripted role
policies (a pure function of the request), or from any `Responder` it is
given (fleet's replay serves a recorded run's answers that way). Its answers
are not written by a model; it says so wherever they are shown.

Write a scripted role:

    def echo(situation: Situation) -> Generator[Turn, list[Observation], str]:
        results = yield Turn("Looking.", [Call("Glob", {"pattern": "*.md"})])
        return f"I found: {results[0].content}"

    sim.register_policy("echo", echo)       # or register_policy(...) for every simulator
"""

from __future__ import annotations

from . import _orchestrator as _orchestrator  # registers the orchestrator role's policy
from ._generic import SEARCH_ONLY
from ._policies import (
    Call,
    Observation,
    Policy,
    PolicyRegistry,
    PolicyResponder,
    Situation,
    Turn,
    register_policy,
    role_of,
    system_text,
)
from ._server import ErrorReply, Responder, Simulator, SimulatorStats
from ._usage import CHARS_PER_TOKEN, MIN_CACHEABLE_TOKENS, count_request_tokens, estimate_tokens

__all__ = [
    "CHARS_PER_TOKEN",
    "MIN_CACHEABLE_TOKENS",
    "SEARCH_ONLY",
    "Call",
    "ErrorReply",
    "Observation",
    "Policy",
    "PolicyRegistry",
    "PolicyResponder",
    "Responder",
    "Simulator",
    "SimulatorStats",
    "Situation",
    "Turn",
    "count_request_tokens",
    "estimate_tokens",
    "register_policy",
    "role_of",
    "system_text",
]
