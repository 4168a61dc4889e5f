"""``CardStore``: the backlog of record, one class for callers, made of named parts.

- ``statements``: every SQL statement, and the SQLite/PostgreSQL differences;
- ``transactions``: engine, one transaction per operation, events, driver errors;
- ``intake``: create, bulk create, link;
- ``lifecycle``: claim, deliver, renew, complete, fail, release (the fence);
- ``recovery``: reclaim, block, unblock;
- ``read_models``: card, list, events, stats, board, tick view;
- ``fleet_state``: the pause flag and the agents' status rows;
- ``operator_ops``: what only an operator does (aim a card elsewhere);
- ``spend_ledger``: the spend ledger and the reader's file marks (``spend_statements``);
- ``chat_messages``: the chat connector's durable queue of messages to the orchestrator.

The store knows nothing of Celery: whoever wants a change announced (a supervisor tick
nudged) passes ``on_change``; it is called with the kind of change ("created", "done",
"released", ...) after the commit, and its failure never undoes the change.
"""

from __future__ import annotations

from fleet_queue.settings import Settings
from fleet_queue.store import migrate
from fleet_queue.store.chat_messages import ChatMessages
from fleet_queue.store.fleet_state import FleetState
from fleet_queue.store.intake import Intake
from fleet_queue.store.lifecycle import Lifecycle
from fleet_queue.store.operator_ops import OperatorOps
from fleet_queue.store.read_models import ReadModels
from fleet_queue.store.recovery import Recovery
from fleet_queue.store.spend_ledger import SpendLedger
from fleet_queue.store.transactions import ChangeHook


class CardStore(
    Intake, Lifecycle, Recovery, ReadModels, FleetState, OperatorOps, SpendLedger, ChatMessages
):
    """The backlog of record, bound to one tenant; every method is one transaction."""

    @classmethod
    def from_settings(cls, settings: Settings, *, on_change: ChangeHook | None = None) -> CardStore:
        """The store of ``settings`` (tenant, host, max attempts), schema migrated to head.

        ``on_change``: the hook told of each committed change (none by default).
        """
        return cls(
            settings.effective_database_url,
            tenant=settings.tenant,
            host=settings.host,
            max_attempts=settings.max_attempts,
            max_card_bytes=settings.max_card_bytes,
            on_change=on_change,
        )

    def __enter__(self) -> CardStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_revision(self) -> str | None:
        return migrate.current_revision(self.engine)
