"""``fleet backlog list|show|stats|events``: reading the backlog, changing nothing.

Registered by ``fleet_queue.cli.backlog_cmd`` in help order, so ``fleet backlog`` still
loads one group.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fleet_queue.cards import Card, CardStatus
from fleet_queue.cli.common import JsonFlag, emit, open_store, print_table, settings_of

CARD_COLUMNS = ["id", "status", "priority", "title", "phase", "target", "owner", "token", "deps"]


def _row(card: Card) -> dict[str, Any]:
    return {
        "id": card.id,
        "status": card.status.value,
        "priority": card.priority,
        "title": card.title if len(card.title) <= 60 else card.title[:57] + "...",
        "phase": card.phase,
        "target": card.target_agent or card.target_class,
        "owner": card.lease_owner if card.status is CardStatus.CLAIMED else None,
        "token": card.token or None,
        "deps": f"{card.unmet_deps}/{len(card.depends_on)}" if card.depends_on else None,
    }


def list_cards(
    ctx: typer.Context,
    status: Annotated[
        list[CardStatus] | None, typer.Option("--status", "-s", help="Only these (repeat).")
    ] = None,
    phase: Annotated[str | None, typer.Option("--phase")] = None,
    target_agent: Annotated[str | None, typer.Option("--agent")] = None,
    target_class: Annotated[str | None, typer.Option("--class")] = None,
    ready_only: Annotated[
        bool, typer.Option("--ready-only", help="Ready and every dependency done.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1)] = None,
    as_json: JsonFlag = False,
) -> None:
    """List cards, best first (priority, then age)."""
    with open_store(ctx) as store:
        cards = store.list(
            status=status or None,
            phase=phase,
            target_agent=target_agent,
            target_class=target_class,
            ready_only=ready_only,
            limit=limit,
        )
    emit(
        [c.to_dict() for c in cards],
        as_json,
        lambda: print_table([_row(c) for c in cards], CARD_COLUMNS),
    )


def show(ctx: typer.Context, card_id: str, as_json: JsonFlag = False) -> None:
    """One card with its events."""
    with open_store(ctx) as store:
        card = store.get(card_id)
        history = store.events(card_id=card_id)
        dependents = store.dependents(card_id)
    data = {
        **card.to_dict(),
        "dependents": dependents,
        "events": [e.to_dict() for e in history],
    }

    def render() -> None:
        rows = [{"field": k, "value": v} for k, v in card.to_dict().items() if v not in (None, "")]
        rows.append({"field": "dependents", "value": ", ".join(dependents) or None})
        print_table(rows, ["field", "value"], title=f"card {card.id}")
        print_table(
            [e.to_dict() for e in history], ["at", "kind", "agent", "host", "token", "detail"]
        )

    emit(data, as_json, render)


def stats(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Counts by status, oldest ready age, expired leases, last-minute throughput, and the
    ready cards aimed at no agent of the roster (``untargetable``)."""
    from fleet_queue.errors import FleetError
    from fleet_queue.targets import UNTARGETABLE_HINT, untargetable, untargetable_line

    with open_store(ctx) as store:
        data = store.stats()
        try:
            strangers = untargetable(store, settings_of(ctx))
        except FleetError:  # an unreadable roster: stats without the roster's part
            strangers = None
    if strangers is not None:
        data["untargetable"] = sum(strangers.values())
        data["untargetable_targets"] = strangers

    def render() -> None:
        rows = [{"what": k, "value": v} for k, v in data["counts"].items()]
        skip = {"counts", "now", "untargetable_targets"}
        rows += [{"what": k, "value": v} for k, v in data.items() if k not in skip]
        print_table(rows, ["what", "value"], title=f"backlog of {data['tenant']}")
        if strangers:
            typer.echo(f"{untargetable_line(strangers)}: {UNTARGETABLE_HINT}")

    emit(data, as_json, render)


def events(
    ctx: typer.Context,
    card_id: Annotated[str | None, typer.Option("--card", help="Only this card.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    since: Annotated[
        float | None, typer.Option("--since", help="Only the last N seconds.", min=0)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """The audit trail, oldest first."""
    with open_store(ctx) as store:
        start = None
        if since is not None:
            from datetime import timedelta

            start = store.now() - timedelta(seconds=since)
        found = store.events(card_id=card_id, kind=kind, since=start, limit=limit)
    rows = [e.to_dict() for e in found]
    emit(
        rows,
        as_json,
        lambda: print_table(
            rows, ["id", "at", "card_id", "kind", "agent", "host", "token", "detail"]
        ),
    )
