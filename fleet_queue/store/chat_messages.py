"""Chat messages in the card store: the connector's durable queue (``chat_messages``).

Each change is a compare-and-set on the row's state, so two connectors (or one that
restarted mid-step) cannot both deliver a message or both mark it answered; the times are
the database clock's, like every other time in the store.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from fleet_queue.connector.base import OPEN_STATES, ChatMessage, ChatRecord, ChatState
from fleet_queue.store.engine import db_now
from fleet_queue.store.tables import chat_messages as chat
from fleet_queue.store.transactions import StoreBase

CHAT_CHANGE = "chat"
"""The change kind announced after a chat message is stored or moves on."""


class ChatMessages(StoreBase):
    def chat_receive(self, message: ChatMessage, agent: str) -> ChatRecord | None:
        """Store a message for ``agent`` as ``queued``; None when this network's message id
        is stored already (an adapter re-reading after a crash)."""
        mine = (chat.c.tenant_id == self.tenant) & (chat.c.network == message.network)
        try:
            with self._write() as tx:
                seen = tx.conn.execute(
                    sa.select(chat.c.id).where(mine & (chat.c.event_id == message.event_id))
                ).first()
                if seen is not None:
                    return None
                stmt = (
                    sa.insert(chat)
                    .values(
                        tenant_id=self.tenant,
                        network=message.network,
                        room=message.room,
                        sender=message.sender,
                        event_id=message.event_id,
                        thread_root=message.thread_root,
                        text=message.text,
                        agent=agent,
                        state=ChatState.QUEUED,
                        created_at=db_now(),
                        updated_at=db_now(),
                    )
                    .returning(*chat.c)
                )
                row = tx.conn.execute(stmt).mappings().one()
                tx.changes.append(CHAT_CHANGE)
                return _record(row)
        except sa_exc.IntegrityError:
            return None  # the same message stored by another connector meanwhile

    def chat_open(self, network: str | None = None) -> list[ChatRecord]:
        """Queued and delivered messages, oldest first: what a (re)started connector resumes."""
        return self.chat_list(network, states=OPEN_STATES)

    def chat_list(
        self,
        network: str | None = None,
        *,
        states: tuple[ChatState, ...] | None = None,
        limit: int | None = None,
    ) -> list[ChatRecord]:
        query = sa.select(chat).where(chat.c.tenant_id == self.tenant)
        if network is not None:
            query = query.where(chat.c.network == network)
        if states is not None:
            query = query.where(chat.c.state.in_([str(s) for s in states]))
        query = query.order_by(chat.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]

    def chat_delivered(self, chat_id: int, turn_id: str, prompt_sha: str) -> bool:
        """queued -> delivered, with the turn and the hash of what was typed."""
        return self._chat_move(
            chat_id,
            (ChatState.QUEUED,),
            state=ChatState.DELIVERED,
            turn_id=turn_id,
            prompt_sha=prompt_sha,
            delivered_at=db_now(),
        )

    def chat_reply(self, chat_id: int, reply: str) -> bool:
        """Keep the turn's reply before it is sent (it stays ``delivered`` until sent)."""
        return self._chat_move(chat_id, (ChatState.DELIVERED,), reply=reply, only_if_no_reply=True)

    def chat_answered(self, chat_id: int) -> bool:
        """delivered -> answered: the reply was sent; a later connector never sends it again."""
        return self._chat_move(
            chat_id, (ChatState.DELIVERED,), state=ChatState.ANSWERED, answered_at=db_now()
        )

    def chat_failed(self, chat_id: int, reason: str) -> bool:
        """queued or delivered -> failed, with the reason told to the room."""
        return self._chat_move(chat_id, OPEN_STATES, state=ChatState.FAILED, reason=reason)

    def _chat_move(
        self,
        chat_id: int,
        states: tuple[ChatState, ...],
        *,
        only_if_no_reply: bool = False,
        **values: Any,
    ) -> bool:
        where = (
            (chat.c.tenant_id == self.tenant)
            & (chat.c.id == chat_id)
            & chat.c.state.in_([str(s) for s in states])
        )
        if only_if_no_reply:
            where = where & chat.c.reply.is_(None)
        with self._write() as tx:
            done = tx.conn.execute(
                sa.update(chat).where(where).values(updated_at=db_now(), **values)
            )
            if done.rowcount == 1:
                tx.changes.append(CHAT_CHANGE)
            return done.rowcount == 1


def _record(row: Any) -> ChatRecord:
    return ChatRecord(
        id=int(row["id"]),
        network=row["network"],
        room=row["room"],
        sender=row["sender"],
        event_id=row["event_id"],
        text=row["text"],
        agent=row["agent"],
        state=ChatState(row["state"]),
        thread_root=row["thread_root"],
        turn_id=row["turn_id"],
        prompt_sha=row["prompt_sha"],
        reply=row["reply"],
        reason=row["reason"],
        created_at=float(row["created_at"]),
        delivered_at=_seconds(row["delivered_at"]),
        answered_at=_seconds(row["answered_at"]),
    )


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)
