"""The chat connector's queue in the store, on SQLite and PostgreSQL: one row per network
message, and each step a compare-and-set a restarted or second connector cannot repeat."""

from __future__ import annotations

from fleet_queue.connector.base import ChatMessage, ChatState
from fleet_queue.store import CardStore


def message(event: str, text: str = "hello") -> ChatMessage:
    return ChatMessage("matrix", "!room:x", "@alice:x", event, text)


def test_a_message_is_stored_once_and_moves_forward_only(store: CardStore) -> None:
    first = store.chat_receive(message("$1"), "orch")
    assert first is not None and first.state == ChatState.QUEUED
    assert store.chat_receive(message("$1", "again"), "orch") is None  # re-read after a crash
    second = store.chat_receive(message("$2"), "orch")
    assert second is not None
    assert [r.id for r in store.chat_open("matrix")] == [first.id, second.id]

    assert store.chat_delivered(first.id, "nonce1", "a" * 64)
    assert not store.chat_delivered(first.id, "nonce2", "b" * 64)  # typed once
    assert store.chat_reply(first.id, "the answer")
    assert not store.chat_reply(first.id, "another answer")  # the kept reply is the one sent
    assert store.chat_answered(first.id)
    assert not store.chat_answered(first.id)
    assert not store.chat_failed(first.id, "late")  # an answered message stays answered

    assert store.chat_failed(second.id, "no reply within 1800s")
    rows = {r.id: r for r in store.chat_list()}
    assert rows[first.id].state == ChatState.ANSWERED
    assert (rows[first.id].turn_id, rows[first.id].reply) == ("nonce1", "the answer")
    assert rows[second.id].state == ChatState.FAILED
    assert rows[second.id].reason == "no reply within 1800s"
    assert store.chat_open("matrix") == []
