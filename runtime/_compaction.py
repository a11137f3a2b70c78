"""Compaction: when an agent's context nears its window, the conversation becomes a summary.

    compactor = Compactor(log, hooks, model, context_window=200_000, compact_at=0.8)
    if compactor.due():
        await compactor.compact()      # PreCompact, one summary call, ContextCompacted

The agent asks its own model for the summary, with `COMPACTION_PROMPT` added
to the last user message, and the conversation folds to one user message that
opens with `COMPACTED_PREFIX` (see `_conversation.py`). Both strings belong to
the agent; the offline simulator knows them so that it can answer a
compaction request and go on from a compacted conversation.

Notes (do not fix without reading this):
1. The summary call's ModelResponded and the ContextCompacted are appended
   together, atomically, so a crash cannot leave the summary request in the
   conversation. The summary call's cost is the agent's cost.
2. A failed summary call is not an error: the agent carries on uncompacted
   (the next step tries again, or the model refuses a prompt that is too long).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from events import ContextCompacted

from .errors import ModelCallFailed

if TYPE_CHECKING:  # `_conversation` imports the prefix from here: no cycle at run time
    from ._agent_hooks import AgentHooks
    from ._agent_log import AgentLog
    from ._agent_model import AgentModel

__all__ = ["COMPACTED_PREFIX", "COMPACTION_PROMPT", "Compactor"]

logger = logging.getLogger(__name__)

COMPACTION_PROMPT = (
    "Your context window is nearly full. Summarise this conversation so that the work can "
    "continue from your summary alone: the task, what has been done (tools called, files read "
    "and written, results), what is left, and any facts needed to finish. Reply with text only."
)
"""The instruction the agent appends to ask for a compaction summary (the simulator knows it)."""

COMPACTED_PREFIX = (
    "This conversation was compacted to free the context window. Summary of the earlier part:\n\n"
)
"""How the agent opens the user message that replaces a compacted conversation."""


class Compactor:
    """Compacts one agent's conversation above `compact_at` of its context window."""

    def __init__(
        self,
        log: AgentLog,
        hooks: AgentHooks,
        model: AgentModel,
        *,
        context_window: int,
        compact_at: float,
    ) -> None:
        self.context_window = context_window
        self.threshold = compact_at * context_window
        self._log = log
        self._hooks = hooks
        self._model = model

    def due(self) -> bool:
        """True when the tokens in use are above the threshold."""
        return self._log.state.context_tokens > self.threshold

    def still_full(self) -> str:
        """Why compacting again would not help: the reason AgentFailed(limit="context") records."""
        return (
            "the context window is still full after compaction: "
            f"{self._log.state.context_tokens} tokens of {self.context_window} "
            f"(compacting above {self.threshold:.0f})"
        )

    async def compact(self) -> bool:
        """Summarise the conversation (PreCompact first); True if it was compacted."""
        log, hooks, state = self._log, self._hooks, self._log.state
        before = state.context_tokens
        outcome = await hooks.dispatch("PreCompact", trigger="auto")
        if outcome is not None and outcome.blocked:
            await log.append(hooks.events(outcome, state.last_position))
            return False
        cause = state.last_position
        try:
            reply = await self._model.respond(_asking_for_summary(state.messages))
        except ModelCallFailed as e:  # module note 2
            logger.debug(
                "compaction of %s failed, carrying on uncompacted: %s", log.spec.agent_id, e
            )
            return False
        summary = reply.text or "(the model gave no summary)"
        after = await self._tokens_after(summary)
        compacted = ContextCompacted(
            agent_id=log.spec.agent_id,
            trigger="auto",
            tokens_before=before,
            tokens_after=after,
            summary=summary,
        )
        text_only = [b for b in reply.content if b.get("type") == "text"]
        await log.append(  # module note 1
            [
                *hooks.events(outcome, cause),
                log.event(self._model.responded(reply, content=text_only), cause),
                log.event(compacted, cause),
            ]
        )
        await hooks.session_start("compact")
        return True

    async def _tokens_after(self, summary: str) -> int:
        messages = [{"role": "user", "content": COMPACTED_PREFIX + summary}]
        try:
            return await self._model.count_tokens(messages)
        except ModelCallFailed:
            return (len(self._model.system_prompt) + len(messages[0]["content"])) // 4


def _asking_for_summary(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with `COMPACTION_PROMPT` added to the last one; the argument is never mutated."""
    asked = [dict(m) for m in messages]
    last = asked[-1]
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    asked[-1] = {**last, "content": [*blocks, {"type": "text", "text": COMPACTION_PROMPT}]}
    return asked
