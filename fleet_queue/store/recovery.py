"""Taking leases back and parking cards: the reclaim of expired leases, an operator's
reclaim of one card, and block/unblock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import RowMapping

from fleet_queue.cards import Card, CardStatus, EventKind, ReclaimedCard
from fleet_queue.errors import ConflictError
from fleet_queue.store import rules
from fleet_queue.store.read_statements import BLOCKED, CLAIMED, FAILED, READY
from fleet_queue.store.rows import card_from_row
from fleet_queue.store.statements import finish, unlease
from fleet_queue.store.transactions import StoreBase, Tx


class Recovery(StoreBase):
    """Reclaim, block and unblock: what ends a lease without its holder."""

    def reclaim_expired(self) -> list[ReclaimedCard]:
        """Take back every lease past its expiry (database time).

        The card goes back to ready, or to failed once its attempts reached max_attempts.
        """
        with self._write() as tx:
            rows = tx.conn.execute(self.sql.expired_leases()).mappings().all()
            return self._reclaim_rows(tx, rows, forced=False)

    def reclaim_card(self, card_id: str, reason: str = "reclaimed by operator") -> ReclaimedCard:
        """Take back one card's lease now, expired or not (an operator's recovery)."""
        with self._write() as tx:
            row = self._must(tx.conn, card_id, lock=True)
            if row["status"] != CLAIMED:
                raise ConflictError(f"card {card_id!r} is {row['status']}, not claimed")
            rows = tx.conn.execute(self.sql.lease_of(card_id)).mappings().all()
            return self._reclaim_rows(tx, rows, forced=True, reason=reason)[0]

    def _reclaim_rows(
        self, tx: Tx, rows: Sequence[RowMapping], *, forced: bool, reason: str | None = None
    ) -> list[ReclaimedCard]:
        out: list[ReclaimedCard] = []
        for row in rows:
            exhausted = not forced and row["attempts"] >= row["max_attempts"]
            if exhausted:
                why = f"lease expired on attempt {row['attempts']} of {row['max_attempts']}"
                values = finish(FAILED, reason=why)
                outcome = CardStatus.FAILED
            else:
                why = reason or f"lease expired on attempt {row['attempts']}"
                values = {**unlease(), "status": READY}
                outcome = CardStatus.READY
            tx.conn.execute(self.sql.update_seq(row["seq"], values))
            out.append(
                ReclaimedCard(
                    card_id=row["id"],
                    token=row["token"],
                    agent=row["lease_owner"],
                    host=row["host"],
                    attempts=row["attempts"],
                    outcome=outcome,
                    reason=why,
                )
            )
        self._events(
            tx,
            [
                self.sql.event_row(
                    r.host or self.host,
                    r.card_id,
                    EventKind.RECLAIMED if r.outcome is CardStatus.READY else EventKind.FAILED,
                    r.agent,
                    r.token,
                    r.reason,
                )
                for r in out
            ],
        )
        if out:
            tx.changes.append(EventKind.RECLAIMED)
        return out

    def block(self, card_id: str, reason: str = "blocked by operator") -> Card:
        """Park a ready or claimed card (its lease, if any, ends: the token goes stale)."""
        reason = rules.clean_reason(reason)
        with self._write() as tx:
            row = self._must(tx.conn, card_id, lock=True)
            if row["status"] == BLOCKED:
                return card_from_row(row)
            if row["status"] not in (READY, CLAIMED):
                raise ConflictError(
                    f"card {card_id!r} is {row['status']}; only ready or claimed "
                    "cards can be blocked"
                )
            values = {**unlease(), "status": BLOCKED, "reason": reason}
            result = self._update_seq(tx, row["seq"], values)
            self._event(
                tx, card_id, EventKind.BLOCKED, agent=row["lease_owner"], token=row["token"],
                detail=reason,
            )  # fmt: skip
            tx.changes.append(EventKind.BLOCKED)
            return result

    def unblock(self, card_id: str) -> Card:
        """Return a blocked card to ready; a failed card too (requeued with attempts reset).

        Its count of delivery failures starts afresh (the operator fixed what blocked it)."""
        with self._write() as tx:
            row = self._must(tx.conn, card_id, lock=True)
            if row["status"] not in (BLOCKED, FAILED):
                raise ConflictError(
                    f"card {card_id!r} is {row['status']}; only blocked or failed "
                    "cards can be unblocked"
                )
            values: dict[str, Any] = {
                "status": READY,
                "reason": None,
                "completed_at": None,
                "delivery_failures": 0,
            }
            if row["status"] == FAILED:
                values["attempts"] = 0
            result = self._update_seq(tx, row["seq"], values)
            self._event(tx, card_id, EventKind.UNBLOCKED, detail=f"was {row['status']}")
            tx.changes.append(EventKind.UNBLOCKED)
            return result

    def _update_seq(self, tx: Tx, seq: int, values: dict[str, Any]) -> Card:
        return card_from_row(tx.conn.execute(self.sql.update_seq(seq, values)).mappings().one())
