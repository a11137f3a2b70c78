"""Re-execution of recorded runs: their model answers from the log, tools and hooks anew.

    async with open_store(path) as store, ProjectionRunner(store) as runner:
        result = await rerun(store, runner, "1a2b3c4d5e")
        for d in result.divergences:
            print(d.agent, d.step, d.kind, d.expected, "->", d.actual)

A re-execution is a run of its own (`RunStarted.replay_of` names the
recording), on a fresh copy of the recorded workspace, whose model is the
offline simulator serving the recording's answers (`ReplayResponder`). Each
place where tools or hooks now do otherwise is a `Divergence`, and a
`ReplayDiverged` event on the new run's stream. Nothing is paid.
"""

from __future__ import annotations

from ._answers import ReplayMiss, ReplayResponder, ReplayScript
from ._copy import copy_workspace
from ._diff import REPLAY_MASKS, REPLAY_UNCHECKED_TOOLS, Divergence
from ._rerun import RerunOptions, RerunResult, rerun
from .errors import ReplayImpossible, WorkspaceUnavailable

__all__ = [
    "REPLAY_MASKS",
    "REPLAY_UNCHECKED_TOOLS",
    "Divergence",
    "ReplayImpossible",
    "ReplayMiss",
    "ReplayResponder",
    "ReplayScript",
    "RerunOptions",
    "RerunResult",
    "WorkspaceUnavailable",
    "copy_workspace",
    "rerun",
]
