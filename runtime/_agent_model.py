"""An agent's model calls: its system prompt, its tools, its model, and the event each answer is.

    model = AgentModel(client, info, log, toolbox, stats)
    reply = await model.respond(log.state.messages)
    await log.append([log.event(model.responded(reply), cause)])

One place builds every request an agent makes (the loop's and compaction's),
so both go through the same client, system prompt and tool definitions.
"""

from __future__ import annotations

import time
from typing import Any

from events import ModelResponded

from ._agent_log import AgentLog
from ._agent_spec import AgentStats, system_prompt_for
from ._client import ModelClient, ModelReply
from ._models import ModelInfo
from ._tools import Toolbox

__all__ = ["AgentModel"]


class AgentModel:
    """The requests one agent makes to its model, through the runtime's shared client."""

    def __init__(
        self,
        client: ModelClient,
        info: ModelInfo,
        log: AgentLog,
        toolbox: Toolbox,
        stats: AgentStats,
    ) -> None:
        self.client = client
        self.info = info
        self._log = log
        self._toolbox = toolbox
        self._stats = stats

    @property
    def system_prompt(self) -> str:
        """The recorded system prompt (AgentCreated's), else the one the runtime would give."""
        created = self._log.state.created
        if created is not None:
            return created.system_prompt
        return system_prompt_for(self._log.spec, self._toolbox.names)

    async def respond(self, messages: list[dict[str, Any]]) -> ModelReply:
        """The model's answer to `messages`. Raises `ModelCallFailed` (after the SDK's retries)."""
        started = time.perf_counter()
        try:
            return await self.client.respond(
                model=self.info.id,
                system=self.system_prompt,
                messages=messages,
                tools=self._toolbox.definitions(),
                max_tokens=self._log.spec.max_tokens,
                agent=self._log.spec.agent_id,
            )
        finally:
            self._stats.model_s += time.perf_counter() - started

    async def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Input tokens of a request with `messages`. Raises `ModelCallFailed`."""
        return await self.client.count_tokens(
            model=self.info.id,
            system=self.system_prompt,
            messages=messages,
            tools=self._toolbox.definitions(),
        )

    def responded(
        self, reply: ModelReply, *, content: list[dict[str, Any]] | None = None
    ) -> ModelResponded:
        """The ModelResponded event of `reply` (with `content` instead of the reply's, if given)."""
        return ModelResponded(
            agent_id=self._log.spec.agent_id,
            message_id=reply.message_id,
            model=reply.model,
            stop_reason=reply.stop_reason,
            content=reply.content if content is None else content,
            usage=reply.usage,
            cost_usd=reply.cost_usd,
            duration_ms=reply.duration_ms,
            turn=self._log.state.turns + 1,
        )
