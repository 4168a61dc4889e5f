"""The card store: the backlog of record (SQLite or PostgreSQL), behind named operations.

All SQL lives in ``fleet_queue.store.statements``; callers use :class:`CardStore`.
"""

from __future__ import annotations

from fleet_queue.store.card_store import CardStore

__all__ = ["CardStore"]
