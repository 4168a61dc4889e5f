"""What only an operator does to a card: aim it at another agent or class.

A card's claim lane (``route``) follows its target, so the two change together, in one
transaction with the card locked. Only a card nobody holds (ready or blocked) may be
re-aimed: a claimed card's lease names its agent already.
"""

from __future__ import annotations

from fleet_queue.cards import Card, EventKind
from fleet_queue.errors import ConflictError, UsageError
from fleet_queue.names import name_problem
from fleet_queue.store.read_statements import BLOCKED, READY
from fleet_queue.store.rows import card_from_row
from fleet_queue.store.statements import route
from fleet_queue.store.transactions import StoreBase


class OperatorOps(StoreBase):
    def retarget(
        self, card_id: str, target_agent: str | None, target_class: str | None, by: str
    ) -> Card:
        """Aim a ready or blocked card at one agent, one class, or (both None) anyone."""
        if target_agent and target_class:
            raise UsageError("aim a card at an agent or at a class, not both")
        for what, name in (("agent", target_agent), ("class", target_class)):
            if name is not None and (problem := name_problem(what, name)):
                raise UsageError(f"target {what}: {problem}")
        with self._write() as tx:
            row = self._must(tx.conn, card_id, lock=True)
            if row["status"] not in (READY, BLOCKED):
                raise ConflictError(
                    f"card {card_id!r} is {row['status']}; only ready or blocked cards"
                    " can be aimed elsewhere"
                )
            values = {
                "target_agent": target_agent,
                "target_class": target_class,
                "route": route(target_agent, target_class),
            }
            stmt = self.sql.update_seq(row["seq"], values)
            card = card_from_row(tx.conn.execute(stmt).mappings().one())
            aim = f"agent {target_agent}" if target_agent else target_class or "any agent"
            self._event(
                tx,
                card_id,
                EventKind.OPERATOR,
                agent=target_agent,
                detail=f"by {by}: aimed at {aim}",
            )
            tx.changes.append(EventKind.OPERATOR)
            return card
