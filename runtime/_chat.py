"""Conversations with the orchestrator: a person's messages in, the orchestrator's answers out.

    chat = Chat(fleet)
    posted = await chat.post("rename `a` to `b`")            # a new conversation
    await chat.post("what did the builder decide?", posted.conversation_id)
    messages = await chat.messages(posted.conversation_id)   # the conversation so far

A conversation is the stream `chat-<conversation_id>` of `ChatMessagePosted`
events, and a run `chat-<conversation_id>` (RunStarted, pattern "chat") that
holds every agent it makes. Prose goes to one orchestrator agent per
conversation (role `orchestrator`, CRUD tools, created by the first message,
commanded by each later one); its final answer of a turn is posted back with
`reply_to` naming the message it answers. Slash commands (`_slash.py`) are
answered by the fleet itself at once, even while the orchestrator works.

Notes (do not fix without reading this):
1. Everything is read back from the log: the orchestrator's id is in its
   answers (`agent_id`), and a message is unanswered while no answer names its
   position. So a conversation survives a restart and another process can
   carry it on: the next post answers what was left unanswered, in order.
2. One driver task per conversation answers prose in order (the orchestrator
   takes one prompt at a time). A post while it runs only wakes it; the driver
   checks the wake flag after its last read with no await in between, so no
   post is missed.
3. An orchestrator the log shows working that no task of this process drives
   (the process that drove it died) is interrupted before the next prompt:
   its turn was cut, and it says so in its status.
4. Two processes may serve one conversation (two terminals, a terminal and the
   server). The one whose orchestrator turn is running answers the messages
   that arrive meanwhile (its driver reads what is unanswered after each
   answer); the other, refused the orchestrator's lease (or finding it busy),
   waits for the turn to end and looks again, and never answers in its place.
   An orchestrator made for a conversation is found in the run's agents before
   it has answered, so the other process does not make a second one.
5. An answer is appended with the chat stream's expected version, after
   checking that no answer to the same message is there: a message is answered
   once, whatever two processes do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from events import (
    NO_STREAM,
    ChatMessagePosted,
    EventFilter,
    Meta,
    NewEvent,
    RecordedEvent,
    RunStarted,
)
from events.errors import FleetError, VersionConflict

from ._slash import parse_command, run_command
from .errors import (
    AgentBusy,
    AgentDrivenElsewhere,
    AgentNotWorking,
    ConversationNotFound,
    InvalidAgentSpec,
)

if TYPE_CHECKING:
    from ._fleet import Fleet

__all__ = [
    "CONVERSATION_ID_PATTERN",
    "ORCHESTRATOR_INSTRUCTIONS",
    "Chat",
    "ChatMessage",
    "Conversation",
    "Posted",
    "chat_stream",
]

logger = logging.getLogger(__name__)

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID = re.compile(CONVERSATION_ID_PATTERN)
MAX_TEXT = 100_000
_ELSEWHERE_RETRY_S = 30.0

ORCHESTRATOR_INSTRUCTIONS = (
    "Mode: conversation. You talk with a person: each of their messages is a new prompt. "
    "Do what it asks with your tools, then answer in a few lines and stop; they will follow up. "
    "Keep the agents you create until the person asks you to delete them. Read your agents' "
    "outputs (summaries and file paths), never their transcripts, so your context stays small."
)
"""What the conversation's orchestrator is told besides its role (the simulator reads the
`Mode: conversation` line)."""


def chat_stream(conversation_id: str) -> str:
    """The stream of a conversation's messages."""
    return f"chat-{conversation_id}"


def _run_id(conversation_id: str) -> str:
    return f"chat-{conversation_id}"


@dataclass(frozen=True, slots=True)
class Posted:
    """A message accepted into a conversation: the conversation and the message's position."""

    conversation_id: str
    position: int


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation, as the log holds it."""

    position: int
    conversation_id: str
    role: Literal["user", "orchestrator"]
    text: str
    author: str
    reply_to: int | None
    agent_id: str | None
    recorded_at: str

    @classmethod
    def of(cls, event: RecordedEvent) -> ChatMessage:
        data = event.data
        assert isinstance(data, ChatMessagePosted)
        return cls(
            event.position, data.conversation_id, data.role, data.text, data.author,
            data.reply_to, data.agent_id, event.recorded_at.isoformat(),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "conversation_id": self.conversation_id,
            "role": self.role,
            "text": self.text,
            "author": self.author,
            "reply_to": self.reply_to,
            "agent_id": self.agent_id,
            "recorded_at": self.recorded_at,
        }


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation folded from its stream: its messages and what is still unanswered."""

    conversation_id: str
    run_id: str
    orchestrator_id: str | None
    messages: list[ChatMessage]

    @property
    def unanswered(self) -> list[ChatMessage]:
        """The person's prose messages no answer names yet, oldest first."""
        answered = {m.reply_to for m in self.messages if m.role == "orchestrator"}
        return [
            m
            for m in self.messages
            if m.role == "user" and not m.text.lstrip().startswith("/")
            and m.position not in answered
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "run_id": self.run_id,
            "orchestrator_id": self.orchestrator_id,
            "pending": len(self.unanswered),
            "messages": [m.to_dict() for m in self.messages],
        }


class Chat:
    """Conversations with the orchestrator on one fleet; the fleet owns the tasks it starts."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._kicked: set[str] = set()

    # -- reading -------------------------------------------------------------------------

    async def conversation(self, conversation_id: str) -> Conversation:
        """The conversation so far. Raises `ConversationNotFound`."""
        events = await self.fleet.store.read_stream(chat_stream(conversation_id), lenient=True)
        messages = [ChatMessage.of(e) for e in events if isinstance(e.data, ChatMessagePosted)]
        if not messages:
            raise ConversationNotFound(conversation_id)
        orchestrator = next((m.agent_id for m in reversed(messages) if m.agent_id), None)
        if orchestrator is None:  # made, but it has not answered yet (note 4)
            made = await self.fleet.list_agents(
                run_id=_run_id(conversation_id), role="orchestrator", include_deleted=False
            )
            orchestrator = str(made[-1]["id"]) if made else None
        return Conversation(conversation_id, _run_id(conversation_id), orchestrator, messages)

    async def messages(self, conversation_id: str) -> list[ChatMessage]:
        """The messages so far, in order. Raises `ConversationNotFound`."""
        return (await self.conversation(conversation_id)).messages

    # -- posting -------------------------------------------------------------------------

    async def post(
        self, text: str, conversation_id: str | None = None, *, author: str = "user"
    ) -> Posted:
        """Post a person's message; the answer comes later as a message of the orchestrator.

        A new `conversation_id` (or None: one is made up) starts a conversation.
        Raises `InvalidAgentSpec` (empty or too long text, a malformed id) and
        `ChatCommandInvalid` (a malformed slash command) before anything is written.
        """
        if not text.strip():
            raise InvalidAgentSpec("text", "must not be empty")
        if len(text) > MAX_TEXT:
            raise InvalidAgentSpec("text", f"longer than {MAX_TEXT} characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a line of bytes in another encoding, as Python reads it
            raise InvalidAgentSpec("text", "is not valid UTF-8 text") from None
        command = parse_command(text) if text.lstrip().startswith("/") else None
        cid = conversation_id or uuid.uuid4().hex[:12]
        if not _ID.match(cid):
            raise InvalidAgentSpec("conversation_id", f"must match {CONVERSATION_ID_PATTERN}")
        run_id = _run_id(cid)
        meta = Meta(run_id=run_id, source="api" if author == "api" else "runtime")
        if await self.fleet.store.stream_version(chat_stream(cid)) == 0:
            await self._start_run(cid, text)
        posted = ChatMessagePosted(conversation_id=cid, role="user", text=text, author=author)
        recorded = await self.fleet.store.append(chat_stream(cid), [NewEvent(posted, meta)])
        position = recorded[-1].position
        if command is not None:
            self.fleet.start_run(self._answer_command(cid, position, text), name=f"chat-{cid}-cmd")
        else:
            self._kick(cid)
        return Posted(cid, position)

    async def _start_run(self, cid: str, text: str) -> None:
        run_id = _run_id(cid)
        started = RunStarted(
            run_id=run_id,
            task=text,
            pattern="chat",
            workspace=str(self.fleet.config.workspace),
            model=self.fleet.models.resolve(self.fleet.config.default_model).id,
            simulated=self.fleet.client.simulated,
        )
        with contextlib.suppress(VersionConflict):  # another post started it first
            await self.fleet.store.append(
                f"run-{run_id}", [NewEvent(started, Meta(run_id=run_id))],
                expected_version=NO_STREAM,
            )  # fmt: skip

    async def _reply(
        self, cid: str, text: str, *, reply_to: int, author: str, agent_id: str | None
    ) -> bool:
        """Post the answer to `reply_to` unless one is there already (note 5); True if posted."""
        answer = ChatMessagePosted(
            conversation_id=cid, role="orchestrator", text=text or "(no answer)", author=author,
            reply_to=reply_to, agent_id=agent_id,
        )  # fmt: skip
        meta = Meta(run_id=_run_id(cid), agent_id=agent_id)
        while True:
            events = await self.fleet.store.read_stream(chat_stream(cid), lenient=True)
            if any(getattr(e.data, "reply_to", None) == reply_to for e in events):
                logger.debug("conversation %s: %s was answered elsewhere", cid, reply_to)
                return False
            with contextlib.suppress(VersionConflict):  # a message came meanwhile: look again
                await self.fleet.store.append(
                    chat_stream(cid), [NewEvent(answer, meta)],
                    expected_version=events[-1].version if events else NO_STREAM,
                )  # fmt: skip
                return True

    def resume(self, conversation_id: str) -> None:
        """Answer what the conversation left unanswered (after a restart); returns at once."""
        self._kick(conversation_id)

    async def resume_all(self) -> list[str]:
        """Answer what every conversation of the log left unanswered; the ids it resumed.

        `fleet serve` calls it as it starts: a message posted before a stop is
        answered without waiting for the next one.
        """
        where = EventFilter.of(types=["ChatMessagePosted"])
        answered: set[int] = set()
        asked: dict[int, str] = {}
        async for event in self.fleet.store.iter_all(where=where, lenient=True):
            data = event.data
            if not isinstance(data, ChatMessagePosted):
                continue
            if data.role == "orchestrator" and data.reply_to is not None:
                answered.add(data.reply_to)
            elif data.role == "user" and not data.text.lstrip().startswith("/"):
                asked[event.position] = data.conversation_id
        waiting = sorted({cid for position, cid in asked.items() if position not in answered})
        for cid in waiting:
            self._kick(cid)
        return waiting

    # -- slash commands ----------------------------------------------------------------

    async def _answer_command(self, cid: str, position: int, text: str) -> None:
        try:
            conversation = await self.conversation(cid)
            answer = await run_command(
                self.fleet, parse_command(text), run_id=conversation.run_id,
                orchestrator_id=conversation.orchestrator_id, by=f"chat:{cid}",
            )  # fmt: skip
        except Exception as e:  # a bug: logged and answered, as in `_answer`
            logger.exception("conversation %s: %s failed", cid, text)
            answer = f"{text.split()[0]} failed: an internal error ({type(e).__name__}: {e})"
        await self._reply(cid, answer, reply_to=position, author="fleet", agent_id=None)

    # -- prose: the orchestrator ----------------------------------------------------------

    def _kick(self, cid: str) -> None:
        driver = self._drivers.get(cid)
        if driver is not None and not driver.done():
            self._kicked.add(cid)  # note 2
            return
        self._drivers[cid] = self.fleet.start_run(self._drive(cid), name=f"chat-{cid}")

    async def _drive(self, cid: str) -> None:
        """Answer the conversation's unanswered prose, oldest first, until none is left."""
        try:
            while True:
                self._kicked.discard(cid)
                conversation = await self.conversation(cid)
                pending = conversation.unanswered
                if not pending:
                    if cid in self._kicked:  # a post came during the read (note 2)
                        continue
                    return
                await self._answer(conversation, pending[0])
        finally:
            if self._drivers.get(cid) is asyncio.current_task():
                del self._drivers[cid]

    async def _answer(self, conversation: Conversation, message: ChatMessage) -> None:
        cid = conversation.conversation_id
        orchestrator = conversation.orchestrator_id
        try:
            if orchestrator is not None and await self._deleted(orchestrator):
                orchestrator = None  # someone deleted it: a new one takes the conversation on
            if orchestrator is None:
                status = await self.fleet.create_agent(
                    name="orchestrator", role="orchestrator", task=message.text,
                    run_id=conversation.run_id, instructions=ORCHESTRATOR_INSTRUCTIONS,
                )  # fmt: skip
                orchestrator = str(status["id"])
            else:
                await self._settle(orchestrator)
                await self.fleet.command_agent(orchestrator, message.text, by=f"chat:{cid}")
            await self.fleet.wait_all([orchestrator])
            output = await self.fleet.get_agent_output(orchestrator)
            if output["status"] == "completed":
                text = output["summary"]
            else:
                text = f"The orchestrator {output['status']}: {output['error'] or 'no answer'}"
        except (AgentDrivenElsewhere, AgentBusy):
            # Another live process drives the orchestrator (note 4): it answers this message
            # after its turn, or the next look here does once the orchestrator is free.
            if orchestrator is not None:
                await self.fleet.wait_all([orchestrator], timeout_s=_ELSEWHERE_RETRY_S)
            return
        except FleetError as e:  # unknown model, budget, a hook refused the prompt...
            logger.info("conversation %s: message %s not carried out: %s", cid, message.position, e)
            text = f"Could not carry that out: {e}"
        except Exception as e:  # a bug: the person is told (and it is logged), never left waiting
            logger.exception("conversation %s: message %s failed", cid, message.position)
            text = f"Could not carry that out: an internal error ({type(e).__name__}: {e})"
        await self._reply(
            cid, text, reply_to=message.position, author=orchestrator or "fleet",
            agent_id=orchestrator,
        )  # fmt: skip

    async def _deleted(self, agent_id: str) -> bool:
        status = await self.fleet.get_agent_status(agent_id)
        return bool(status["status"] == "deleted")

    async def _settle(self, orchestrator: str) -> None:
        """Note 3: wait for a turn this process drives; interrupt one nobody drives."""
        status = await self.fleet.get_agent_status(orchestrator)
        if status["status"] not in ("working", "waiting"):
            return
        if self.fleet.is_driving(orchestrator):
            await self.fleet.wait_all([orchestrator])
            return
        with contextlib.suppress(AgentNotWorking):
            await self.fleet.interrupt_agent(orchestrator, by="chat:restart")
