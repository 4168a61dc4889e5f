"""The Python API for scripts: put work into the fleet's backlog without the CLI.

One card::

    import fleet_queue

    card = fleet_queue.enqueue("Fix the flaky login test", priority=5, target_class="coder")
    print(card.id, card.status)          # c-3f2a9b1c0d4e ready

Idempotent (a repeat with the same key returns the first card, creates nothing)::

    fleet_queue.enqueue("Nightly report", id="report-2024-06-01", idempotency_key="report:06-01")

A backlog object for many operations (settings come from ``FLEET_*`` like the CLI)::

    from fleet_queue import Backlog

    with Backlog() as backlog:
        backlog.create("A1", "Schema", priority=5)
        backlog.create("A2", "Service", depends_on=["A1"])
        backlog.import_file("cards.yaml")          # YAML list, JSONL, or a goals file
        for card in backlog.list(ready_only=True):
            print(card.id, card.title)
        backlog.complete("A1", token=1)            # the token of A1's lease

Creating and completing cards nudges a supervisor tick at once (through the broker,
when it is up); pass ``on_change`` to replace that hook.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fleet_queue.card_checks import check_token
from fleet_queue.cards import BulkResult, Card, CardStatus, NewCard
from fleet_queue.composition import open_card_store
from fleet_queue.errors import UsageError
from fleet_queue.importers import load_cards
from fleet_queue.settings import Settings, load_settings
from fleet_queue.store import CardStore
from fleet_queue.store.transactions import ChangeHook, ProgressHook
from fleet_queue.targets import check_targets


def new_card_id() -> str:
    """A fresh id for callers that do not name their cards."""
    return f"c-{uuid.uuid4().hex[:12]}"


class Backlog:
    """The backlog of one tenant, for scripts: create, bulk import, list, complete."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: CardStore | None = None,
        on_change: ChangeHook | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.store = store or open_card_store(self.settings, on_change=on_change)
        self._owns_store = store is None

    def create(
        self,
        id: str | None,
        title: str,
        *,
        body: str = "",
        phase: str | None = None,
        priority: int = 0,
        depends_on: Sequence[str] = (),
        target_agent: str | None = None,
        target_class: str | None = None,
        acceptance: Any = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        allow_unknown_target: bool = False,
    ) -> Card:
        """Create one ready card (``id=None`` picks a fresh id). A target no roster agent
        has is refused (UsageError) unless ``allow_unknown_target`` (``fleet_queue.targets``)."""
        return self._create(
            NewCard(
                id=id or new_card_id(),
                title=title,
                body=body,
                phase=phase,
                priority=priority,
                depends_on=tuple(depends_on),
                target_agent=target_agent,
                target_class=target_class,
                acceptance=acceptance,
                idempotency_key=idempotency_key,
                max_attempts=max_attempts,
            ),
            allow_unknown_target,
        )

    def _create(self, card: NewCard, allow_unknown_target: bool) -> Card:
        check_targets(self.settings, [card], allow_unknown=allow_unknown_target)
        return self.store.create(card)

    def create_many(
        self,
        cards: Iterable[NewCard | dict[str, Any]],
        *,
        progress: ProgressHook | None = None,
        allow_unknown_target: bool = False,
    ) -> BulkResult:
        """Create many cards in one transaction (all or none; targets checked as in create)."""
        batch = [c if isinstance(c, NewCard) else NewCard.from_mapping(c) for c in cards]
        check_targets(self.settings, batch, allow_unknown=allow_unknown_target)
        return self.store.create_many(batch, progress=progress)

    def import_file(
        self,
        path: str | Path,
        *,
        progress: ProgressHook | None = None,
        allow_unknown_target: bool = False,
    ) -> BulkResult:
        """Import a YAML list, a JSONL file or a goals file (see ``fleet_queue.importers``)."""
        return self.create_many(
            load_cards(Path(path)), progress=progress, allow_unknown_target=allow_unknown_target
        )

    def list(
        self,
        *,
        status: CardStatus | str | None = None,
        phase: str | None = None,
        ready_only: bool = False,
        limit: int | None = None,
    ) -> list[Card]:
        if isinstance(status, str) and not isinstance(status, CardStatus):
            try:
                status = CardStatus(status)
            except ValueError:
                choices = ", ".join(s.value for s in CardStatus)
                raise UsageError(f"status {status!r} is not one of {choices}") from None
        return self.store.list(status=status, phase=phase, ready_only=ready_only, limit=limit)

    def get(self, card_id: str) -> Card:
        return self.store.get(card_id)

    def complete(self, card_id: str, token: int, result: str | None = None) -> Card:
        """Mark a card done under its lease's token (StaleTokenError for any other token)."""
        check_token(token)
        return self.store.complete(card_id, token, result)

    def fail(self, card_id: str, token: int, reason: str) -> Card:
        check_token(token)
        return self.store.fail(card_id, token, reason)

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Backlog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def enqueue(
    title: str,
    *,
    id: str | None = None,
    body: str = "",
    phase: str | None = None,
    priority: int = 0,
    depends_on: Sequence[str] = (),
    target_agent: str | None = None,
    target_class: str | None = None,
    acceptance: Any = None,
    idempotency_key: str | None = None,
    allow_unknown_target: bool = False,
    settings: Settings | None = None,
    store: CardStore | None = None,
    on_change: ChangeHook | None = None,
) -> Card:
    """Put one card into the backlog and return it (ready; claimed by the next tick).

    >>> card = enqueue("Write the release notes", priority=3)   # doctest: +SKIP
    >>> card.status                                              # doctest: +SKIP
    <CardStatus.READY: 'ready'>
    """
    backlog = Backlog(settings, store=store, on_change=on_change)
    try:
        return backlog.create(
            id,
            title,
            body=body,
            phase=phase,
            priority=priority,
            depends_on=depends_on,
            target_agent=target_agent,
            target_class=target_class,
            acceptance=acceptance,
            idempotency_key=idempotency_key,
            allow_unknown_target=allow_unknown_target,
        )
    finally:
        backlog.close()
