"""What every part of the card store stands on: the engine, one transaction per operation,
the events written with it, the change hook, and the store's edge for driver errors.

Driver errors end here: a database that is down, refuses us or drops the connection
mid-transaction raises :class:`~fleet_queue.errors.StoreUnavailableError` (one of ours, with
one line saying why), never SQLAlchemy's own exception, wherever the Python API is called.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, RowMapping

from fleet_queue.cards import EventKind, epoch_to_datetime
from fleet_queue.errors import NotFoundError, StoreUnavailableError
from fleet_queue.fleet_status import PauseState
from fleet_queue.limits import DEFAULT_MAX_CARD_BYTES
from fleet_queue.store import migrate
from fleet_queue.store.engine import WRITE, make_engine
from fleet_queue.store.rows import pause_from_row
from fleet_queue.store.statements import CLOCK, INSERT_EVENT, Statements, chunks

log = logging.getLogger(__name__)

ChangeHook = Callable[[str], None]
"""Called with the kind of a committed change ("created", "done", "released", ...)."""

ProgressHook = Callable[[int], None]
"""Called with the number of cards a bulk create has just written."""


def unavailable(exc: sa_exc.SQLAlchemyError) -> StoreUnavailableError:
    """The driver's error as ours: the first line of what the database said."""
    cause = getattr(exc, "orig", None) or exc
    reason = (str(cause).strip().splitlines() or [type(exc).__name__])[0]
    return StoreUnavailableError(f"the card store is not reachable: {reason}")


def _is_outage(exc: sa_exc.SQLAlchemyError) -> bool:
    """A database that is down, full or gone mid-transaction (not a refused statement)."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


@contextmanager
def driver_errors() -> Iterator[None]:
    """Turn an outage raised by the driver into :class:`StoreUnavailableError`."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        if _is_outage(exc):
            raise unavailable(exc) from exc
        raise


@dataclass
class Tx:
    """One open write transaction and the change kinds to announce after its commit."""

    conn: Connection
    changes: list[str] = field(default_factory=list)


class StoreBase:
    """The store's state and transactions; the parts of :class:`CardStore` build on it."""

    def __init__(
        self,
        url: str,
        tenant: str = "default",
        host: str | None = None,
        *,
        max_attempts: int = 3,
        max_card_bytes: int = DEFAULT_MAX_CARD_BYTES,
        on_change: ChangeHook | None = None,
        migrate_schema: bool = True,
        engine: Engine | None = None,
    ) -> None:
        self.url = url
        self.tenant = tenant
        self.host = host or socket.gethostname()
        self.max_attempts = max_attempts
        self.max_card_bytes = max_card_bytes
        self.on_change = on_change
        self.engine = engine or make_engine(url)
        self.sql = Statements(tenant, self.engine.dialect.name)
        self._sqlite = self.sql.sqlite
        if migrate_schema:
            with driver_errors():
                migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Tx]:
        with driver_errors(), self.engine.connect() as conn:
            conn.execution_options(**WRITE)
            tx = Tx(conn)
            with conn.begin():
                yield tx
        self._announce(tx.changes)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with driver_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    def _announce(self, kinds: list[str]) -> None:
        if self.on_change is None:
            return
        for kind in dict.fromkeys(kinds):
            try:
                self.on_change(kind)
            except Exception:  # a failed nudge must not undo a committed change
                log.exception("on_change hook failed for %s", kind)

    def _event(
        self,
        tx: Tx,
        card_id: str | None,
        kind: EventKind,
        *,
        agent: str | None = None,
        token: int | None = None,
        detail: str | None = None,
        host: str | None = None,
    ) -> None:
        row = self.sql.event_row(host or self.host, card_id, kind, agent, token, detail)
        self._events(tx, [row])

    def _events(self, tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
        for chunk in chunks(rows):
            tx.conn.execute(INSERT_EVENT, list(chunk))

    def _now(self, conn: Connection) -> float:
        return float(conn.execute(CLOCK).scalar_one())

    def _clock(self, conn: Connection) -> datetime:
        value = epoch_to_datetime(self._now(conn))
        assert value is not None
        return value

    def _row(self, conn: Connection, card_id: str, *, lock: bool = False) -> RowMapping | None:
        return conn.execute(self.sql.card(card_id, lock=lock)).mappings().first()

    def _must(self, conn: Connection, card_id: str, *, lock: bool = False) -> RowMapping:
        row = self._row(conn, card_id, lock=lock)
        if row is None:
            raise NotFoundError(f"no card {card_id!r} in tenant {self.tenant!r}")
        return row

    def _pause_state(self, conn: Connection) -> PauseState:
        return pause_from_row(conn.execute(self.sql.pause_state()).mappings().first())

    def _agent_holds(self, conn: Connection) -> dict[str, str]:
        """Agents paused by name (their latest pause/resume event is a pause): name -> detail."""
        rows = conn.execute(self.sql.agent_holds()).mappings()
        paused = EventKind.AGENT_PAUSED.value
        return {r["agent"]: r["detail"] or "" for r in rows if r["kind"] == paused and r["agent"]}
