"""The spend ledger in the card store: rows added with the reader's file marks, in one
transaction, so a reader that stops between reading and writing counts nothing twice, and
two readers of the same files cannot both count them (the marks are compare-and-set)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from fleet_queue.errors import ConflictError
from fleet_queue.spend.usage import FileAdvance, FileMark, LedgerEvent, SpendRow, Tokens
from fleet_queue.store.spend_statements import SpendStatements
from fleet_queue.store.transactions import StoreBase


@dataclass(frozen=True)
class SpendTotal:
    """One agent's spend today and this month (cost of priced models only; all tokens)."""

    tenant_id: str
    agent: str
    day_cost: float
    month_cost: float
    day_tokens: int
    month_tokens: int


class SpendLedger(StoreBase):
    """Write the ledger with the reader's marks; read it back for reports and budgets."""

    @property
    def _spend_sql(self) -> SpendStatements:
        return SpendStatements(self.tenant, self.host, self.engine.dialect.name)

    def spend_marks(self, agent: str) -> dict[str, FileMark]:
        """How far this host has read each of ``agent``'s record files."""
        with self._read() as conn:
            rows = conn.execute(self._spend_sql.marks(agent)).mappings()
            return {row["path"]: FileMark(int(row["offset"]), dict(row["state"])) for row in rows}

    def record_spend(
        self,
        agent: str,
        advances: Sequence[FileAdvance],
        rows: Sequence[SpendRow],
        events: Sequence[LedgerEvent] = (),
    ) -> None:
        """Add ``rows`` and move the file marks, all or nothing.

        A mark that is no longer where this reader found it (another reader moved it)
        refuses the whole batch with ConflictError: its rows were counted by that reader.
        """
        sql = self._spend_sql
        with self._write() as tx:
            for advance in advances:
                if advance.before is None:
                    done = tx.conn.execute(sql.first_mark(agent, advance.path, advance.after))
                else:
                    move = sql.move_mark(agent, advance.path, advance.before.offset, advance.after)
                    done = tx.conn.execute(move)
                if done.first() is None:
                    raise ConflictError(
                        f"spend of {agent}: {advance.path} was read by another reader meanwhile"
                    )
            for row in rows:
                tx.conn.execute(sql.add(row))
            for event in events:
                self._event(tx, None, event.kind, agent=event.agent, detail=event.detail)
            if rows:
                tx.changes.append("spend")

    def spend_rows(
        self,
        since_day: str,
        until_day: str | None = None,
        *,
        all_tenants: bool = False,
        cards: Collection[str] | None = None,
    ) -> list[SpendRow]:
        """Ledger rows of these UTC days (``YYYY-MM-DD``, inclusive); only of ``cards``
        when given (the board and a card's page)."""
        with self._read() as conn:
            found = conn.execute(self._spend_sql.rows(since_day, until_day, all_tenants, cards))
            return [_row(row) for row in found.mappings()]

    def spend_totals(self, month_start: str, today: str) -> list[SpendTotal]:
        """Every tenant's agents' spend today and since ``month_start`` (budgets are
        fleet-wide too, so this reads past the store's own tenant)."""
        with self._read() as conn:
            found = conn.execute(self._spend_sql.totals(month_start, today))
            return [
                SpendTotal(str(t), str(a), float(dc), float(mc), int(dt), int(mt))
                for t, a, dc, mc, dt, mt in found
            ]


def _row(row: Any) -> SpendRow:
    tokens = Tokens(
        int(row["input_tokens"]),
        int(row["output_tokens"]),
        int(row["cache_read_tokens"]),
        int(row["cache_write_tokens"]),
    )
    cost = row["cost"]
    return SpendRow(
        agent=row["agent"],
        day=row["day"],
        model=row["model"],
        tokens=tokens,
        cost=None if cost is None else float(cost),
        card=row["card"] or None,
        tenant_id=row["tenant_id"],
    )
