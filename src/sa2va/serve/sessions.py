"""Conversations kept between chat turns: their upload and history, bounded in number and age."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sa2va.errors import Sa2VANotFoundError
from sa2va.outputs import ChatHistory
from sa2va.serve.media import Media


@dataclass
class Conversation:
    """One conversation: the uploaded image or video, the turns so far, and a lock so turns run one at a time.

    Attributes:
        id: the id clients send back as `conversation_id`.
        media: the upload every turn is about (stored on disk, not in memory).
        history: the turns so far.
        last_used: `time.monotonic()` of the last turn.
        lock: held while a turn is answered; a concurrent follow-up waits for it.
        waiting: turns waiting for `lock`.
    """

    id: str
    media: Media
    history: ChatHistory
    last_used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0

    @property
    def in_use(self) -> bool:
        return self.waiting > 0 or self.lock.locked()


class ConversationStore:
    """Conversations by id, least recently used first; used from the event loop thread only.

    At most `max_conversations` are kept and none older than `ttl_s` since its last turn; dropping one deletes its
    upload. A conversation answering a turn is never dropped (the store may then briefly hold more).

    Args:
        max_conversations: how many to keep.
        ttl_s: seconds after the last turn until a conversation is dropped.
        clock: monotonic clock in seconds (tests pass a fake).
    """

    def __init__(self, max_conversations: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_conversations = max_conversations
        self.ttl_s = ttl_s
        self._clock = clock
        self._items: OrderedDict[str, Conversation] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def create(self, media: Media, history: ChatHistory) -> Conversation:
        """Store a new conversation (after its first turn) and return it."""
        conversation = Conversation(secrets.token_urlsafe(12), media, history, self._clock())
        self._items[conversation.id] = conversation
        self._evict()
        return conversation

    def get(self, conversation_id: str) -> Conversation:
        """The conversation `conversation_id`, marked as just used.

        Raises:
            Sa2VANotFoundError: no such conversation (never created, expired or dropped for newer ones).
        """
        self._evict()
        conversation = self._items.get(conversation_id)
        if conversation is None:
            raise Sa2VANotFoundError(
                f"unknown conversation_id {conversation_id[:64]!r}: it was never created here, expired after "
                f"{self.ttl_s:g} s unused, or was dropped to keep the last {self.max_conversations}. Start a new "
                "conversation by sending the file again (without conversation_id)."
            )
        conversation.last_used = self._clock()
        self._items.move_to_end(conversation_id)
        return conversation

    def update(self, conversation: Conversation, history: ChatHistory) -> None:
        """Record the history after a turn."""
        conversation.history = history
        conversation.last_used = self._clock()

    def close(self) -> None:
        """Drop every conversation and delete their uploads."""
        for conversation in self._items.values():
            conversation.media.discard()
        self._items.clear()

    def _evict(self) -> None:
        now = self._clock()
        for conversation in list(self._items.values()):  # oldest first
            expired = now - conversation.last_used > self.ttl_s
            if not (expired or len(self._items) > self.max_conversations):
                continue
            if conversation.in_use:
                continue
            del self._items[conversation.id]
            conversation.media.discard()


__all__ = ["Conversation", "ConversationStore"]
