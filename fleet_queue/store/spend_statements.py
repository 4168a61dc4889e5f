"""Every SQL statement of the spend ledger (the card store's ``spend`` tables).

Kept beside ``statements`` for the same reason: the ledger's data contract in one file.
The ledger adds: each row is an upsert that adds to what is there, and a NULL cost (unknown)
stays unknown once one part of it is.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from fleet_queue.spend.usage import FileMark, SpendRow
from fleet_queue.store.engine import db_now, upsert_insert
from fleet_queue.store.tables import spend, spend_offsets

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


class SpendStatements:
    """The ledger's statements for one tenant and host on one backend."""

    def __init__(self, tenant: str, host: str, dialect: str) -> None:
        self.tenant = tenant
        self.host = host
        self._insert = upsert_insert(dialect)

    def marks(self, agent: str) -> sa.Select[Any]:
        """The files of ``agent`` this host has read, and how far."""
        o = spend_offsets.c
        return sa.select(o.path, o.offset, o.state).where(
            o.tenant_id == self.tenant, o.host == self.host, o.agent == agent
        )

    def first_mark(self, agent: str, path: str, mark: FileMark) -> sa.sql.dml.ReturningInsert[Any]:
        """A file read for the first time; a row already there (another reader) is a no-op
        that returns no row, which the caller refuses. (RETURNING, not rowcount: psycopg
        reports -1 for an INSERT ... ON CONFLICT DO NOTHING.)"""
        stmt = self._insert(spend_offsets).values(
            tenant_id=self.tenant,
            host=self.host,
            agent=agent,
            path=path,
            offset=mark.offset,
            state=mark.state,
            updated_at=db_now(),
        )
        return stmt.on_conflict_do_nothing().returning(spend_offsets.c.path)

    def move_mark(
        self, agent: str, path: str, before: int, after: FileMark
    ) -> sa.sql.dml.ReturningUpdate[Any]:
        """Compare-and-set: move the mark only from where this reader found it."""
        o = spend_offsets.c
        return (
            sa.update(spend_offsets)
            .where(
                o.tenant_id == self.tenant,
                o.host == self.host,
                o.agent == agent,
                o.path == path,
                o.offset == before,
            )
            .values(offset=after.offset, state=after.state, updated_at=db_now())
            .returning(o.path)
        )

    def add(self, row: SpendRow) -> sa.Insert:
        """Add a row's tokens and cost to the ledger (an upsert that sums)."""
        values = {
            "tenant_id": self.tenant,
            "day": row.day,
            "agent": row.agent,
            "card": row.card or "",
            "model": row.model,
            **row.tokens.as_dict(),
            "cost": row.cost,
            "updated_at": db_now(),
        }
        stmt = self._insert(spend).values(**values)
        summed: dict[str, Any] = {
            name: spend.c[name] + stmt.excluded[name] for name in (*TOKEN_COLUMNS, "cost")
        }
        summed["updated_at"] = stmt.excluded.updated_at
        keys = ["tenant_id", "day", "agent", "card", "model"]
        return stmt.on_conflict_do_update(index_elements=keys, set_=summed)

    def rows(
        self,
        since_day: str,
        until_day: str | None,
        all_tenants: bool,
        cards: Collection[str] | None = None,
    ) -> sa.Select[Any]:
        """Ledger rows from ``since_day`` to ``until_day`` (inclusive, UTC days)."""
        stmt = sa.select(spend).where(spend.c.day >= since_day)
        if cards is not None:
            stmt = stmt.where(spend.c.card.in_(sorted(cards)))
        if until_day is not None:
            stmt = stmt.where(spend.c.day <= until_day)
        if not all_tenants:
            stmt = stmt.where(spend.c.tenant_id == self.tenant)
        return stmt.order_by(spend.c.day, spend.c.tenant_id, spend.c.agent, spend.c.card)

    def totals(self, month_start: str, today: str) -> sa.Select[Any]:
        """Per tenant and agent, every tenant: cost and tokens today and this month — what
        the budgets are held against. SUM skips unknown costs: those are held by tokens."""
        s = spend.c
        tokens = s.input_tokens + s.output_tokens + s.cache_read_tokens + s.cache_write_tokens
        is_today = s.day == today
        return (
            sa.select(
                s.tenant_id,
                s.agent,
                sa.func.coalesce(sa.func.sum(sa.case((is_today, s.cost))), 0.0),
                sa.func.coalesce(sa.func.sum(s.cost), 0.0),
                sa.func.coalesce(sa.func.sum(sa.case((is_today, tokens), else_=0)), 0),
                sa.func.coalesce(sa.func.sum(tokens), 0),
            )
            .where(s.day >= month_start)
            .group_by(s.tenant_id, s.agent)
        )
