"""The conversation store: ids, least-recently-used and age eviction, uploads deleted with their conversation."""

from __future__ import annotations

import asyncio

import pytest

from sa2va.errors import Sa2VANotFoundError
from sa2va.outputs import ChatHistory
from sa2va.serve.media import Media
from sa2va.serve.sessions import ConversationStore


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def media(tmp_path, name: str) -> Media:
    path = tmp_path / name
    path.write_bytes(b"x")
    return Media("image", path, name, 1, 1)


def test_least_recently_used_is_dropped_with_its_upload(tmp_path):
    store = ConversationStore(max_conversations=2, ttl_s=100, clock=Clock())
    a, b = store.create(media(tmp_path, "a"), ChatHistory()), store.create(media(tmp_path, "b"), ChatHistory())
    assert a.id != b.id
    store.get(a.id)  # a is now the most recently used
    c = store.create(media(tmp_path, "c"), ChatHistory())
    assert len(store) == 2 and store.get(a.id) is a and store.get(c.id) is c
    with pytest.raises(Sa2VANotFoundError, match="dropped to keep the last 2"):
        store.get(b.id)
    assert not (tmp_path / "b").exists() and (tmp_path / "a").exists()
    store.close()
    assert len(store) == 0 and not any(tmp_path.iterdir())


def test_expired_conversations_are_dropped_but_not_while_in_use(tmp_path):
    clock = Clock()
    store = ConversationStore(max_conversations=10, ttl_s=60, clock=clock)
    idle = store.create(media(tmp_path, "idle"), ChatHistory())
    busy = store.create(media(tmp_path, "busy"), ChatHistory())
    asyncio.run(busy.lock.acquire())  # a turn is being answered
    clock.now = 61
    with pytest.raises(Sa2VANotFoundError, match="expired after 60 s"):
        store.get(idle.id)
    assert store.get(busy.id) is busy and (tmp_path / "busy").exists()
    store.update(busy, ChatHistory(past_text="p", turns=[("q", "a")]))
    assert store.get(busy.id).history.turns == [("q", "a")]
