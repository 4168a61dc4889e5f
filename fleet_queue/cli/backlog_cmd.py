"""``fleet backlog …`` and ``fleet card done|fail``: the verbs that change cards.

Thin: parse, call the store's named operations, print a table or ``--json``. Every refusal
is a ``FleetError`` raised by the store before it changes anything; the root prints it as
one line and exits with its code (2 bad input, 3 unknown card, 4 conflict/stale token).
The commands that only read (``list``, ``show``, ``stats``, ``events``) are in
``backlog_read_cmd``, registered here in help order; ``fleet db`` is ``db_cmd``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet_queue.audit import record
from fleet_queue.cards import Card, NewCard
from fleet_queue.cli.backlog_read_cmd import events, list_cards, show, stats
from fleet_queue.cli.common import JsonFlag, emit, get_console, open_store, print_table
from fleet_queue.cli.common import settings_of as _settings_of
from fleet_queue.errors import NotFoundError, UsageError
from fleet_queue.settings import YEAR, Settings

if TYPE_CHECKING:  # SQLAlchemy and rich.progress load only for the commands that use them
    from fleet_queue.store import CardStore

backlog_app = typer.Typer(help="The backlog of record: create, list, claim, complete cards.")
card_app = typer.Typer(help="What an agent runs when it finishes a card.")

PROGRESS_FROM = 1000
"""Imports of at least this many cards show a progress bar (on stderr)."""

TokenOpt = Annotated[
    int, typer.Option("--token", "-t", help="Fencing token of your lease.", min=0, max=2**63 - 1)
]


def _finite(value: float | None) -> float | None:
    """Click's range lets ``nan`` through (every comparison with it is false)."""
    if value is not None and math.isnan(value):
        raise typer.BadParameter("must be a number of seconds, not nan")
    return value


Ttl = Annotated[
    float | None,
    typer.Option(
        "--ttl",
        help="Lease seconds [default: FLEET_LEASE_TTL].",
        min=0,
        max=YEAR,
        callback=_finite,
    ),
]
AllowUnknownTarget = Annotated[
    bool,
    typer.Option(
        "--allow-unknown-target", help="Accept a target agent/class the roster does not have."
    ),
]


def settings_of(ctx: typer.Context) -> Settings:
    return _settings_of(ctx)


def _say(card: Card, what: str, as_json: bool) -> None:
    emit(card.to_dict(), as_json, lambda: typer.echo(f"{card.id}: {what}"))


def _ids(values: list[str] | None) -> tuple[str, ...]:
    """``--depends-on a,b --depends-on c`` → (a, b, c)."""
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(out)


def _acceptance(values: list[str] | None) -> Any:
    """Each ``--acceptance`` is a JSON value or plain text; several make a list."""
    if not values:
        return None
    parsed: list[Any] = []
    for value in values:
        try:
            parsed.append(json.loads(value))
        except json.JSONDecodeError:
            parsed.append(value)
    return parsed[0] if len(parsed) == 1 else parsed


# --- backlog ------------------------------------------------------------------------------


@backlog_app.command("create")
def create(
    ctx: typer.Context,
    title: Annotated[str, typer.Option("--title", help="What to do (required).")],
    card_id: Annotated[str | None, typer.Option("--id", help="Stable id [default: new].")] = None,
    body: Annotated[str, typer.Option("--body", help="Details.")] = "",
    phase: Annotated[str | None, typer.Option("--phase", help="Board lane / milestone.")] = None,
    priority: Annotated[int, typer.Option("--priority", "-p", help="Higher first.")] = 0,
    depends_on: Annotated[
        list[str] | None, typer.Option("--depends-on", "-d", help="Card ids (repeat or a,b).")
    ] = None,
    target_agent: Annotated[str | None, typer.Option("--agent", help="Only this agent.")] = None,
    target_class: Annotated[str | None, typer.Option("--class", help="Only this role.")] = None,
    acceptance: Annotated[
        list[str] | None, typer.Option("--acceptance", help="Criterion (JSON or text; repeat).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="A repeat returns the first card.")
    ] = None,
    max_attempts: Annotated[int | None, typer.Option("--max-attempts", min=1)] = None,
    allow_unknown: AllowUnknownTarget = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a ready card."""
    from fleet_queue.api import new_card_id
    from fleet_queue.targets import check_targets

    if target_agent is not None and target_class is not None:
        raise UsageError("give --agent or --class, not both: a card aims at one agent or one role")
    new = NewCard(
        id=card_id or new_card_id(),
        title=title,
        body=body,
        phase=phase,
        priority=priority,
        depends_on=_ids(depends_on),
        target_agent=target_agent,
        target_class=target_class,
        acceptance=_acceptance(acceptance),
        idempotency_key=idempotency_key,
        max_attempts=max_attempts,
    )
    check_targets(settings_of(ctx), [new], allow_unknown=allow_unknown)
    with open_store(ctx) as store:
        card = store.create(new)
    _say(card, f"{card.status.value} (priority {card.priority})", as_json)


backlog_app.command("list")(list_cards)
backlog_app.command("show")(show)


@backlog_app.command("claim")
def claim(
    ctx: typer.Context,
    agent: Annotated[str, typer.Option("--agent", "--owner", help="Who takes the lease.")],
    agent_class: Annotated[str | None, typer.Option("--class", help="The agent's role.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="[default: FLEET_HOST]")] = None,
    ttl: Ttl = None,
    card_id: Annotated[str | None, typer.Option("--id", help="Claim this card.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Lease the best ready card for an agent (or --id); prints null/nothing when none."""
    from fleet_queue.targets import roster_targets

    settings = settings_of(ctx)
    targets = roster_targets(settings)
    if targets is not None and agent not in targets.agents:
        raise NotFoundError(
            f"agent {agent!r} is not in the roster ({settings.effective_roster_path});"
            " a lease for it would never be worked"
        )
    with open_store(ctx) as store:
        got = store.claim(
            agent,
            agent_class,
            host or settings.host,
            settings.lease_ttl if ttl is None else ttl,
            card_id=card_id,
        )
    if got is None:
        emit(None, as_json, lambda: get_console().print("nothing ready to claim"))
        return
    emit(
        got.to_dict(),
        as_json,
        lambda: get_console().print(
            f"{got.card.id}: claimed by {got.agent} token {got.token}"
            f" until {got.expires_at:%Y-%m-%d %H:%M:%S}Z"
        ),
    )


@backlog_app.command("renew")
def renew(
    ctx: typer.Context, card_id: str, token: TokenOpt, ttl: Ttl = None, as_json: JsonFlag = False
) -> None:
    """Extend a lease (only with its current token)."""
    settings = settings_of(ctx)
    with open_store(ctx) as store:
        card = store.renew(card_id, token, settings.lease_ttl if ttl is None else ttl)
    assert card.lease_expires_at is not None
    _say(card, f"lease renewed until {card.lease_expires_at:%Y-%m-%d %H:%M:%S}Z", as_json)


@backlog_app.command("reclaim")
def reclaim(
    ctx: typer.Context,
    card_id: Annotated[str | None, typer.Option("--id", help="Reclaim this card now.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Return expired leases to ready (or failed at max attempts); --id forces one card."""
    with open_store(ctx) as store:
        done = [store.reclaim_card(card_id)] if card_id else store.reclaim_expired()
        if card_id:
            record(store, f"reclaimed it (token {done[0].token})", card=card_id)
    rows = [r.to_dict() for r in done]
    emit(
        rows,
        as_json,
        lambda: (
            print_table(rows, ["card_id", "outcome", "agent", "host", "token", "reason"])
            if rows
            else get_console().print("no expired leases")
        ),
    )


@backlog_app.command("link")
def link(
    ctx: typer.Context,
    card_id: Annotated[str, typer.Argument(help="The card that waits.")],
    depends_on: Annotated[str, typer.Argument(help="The card it waits for.")],
    as_json: JsonFlag = False,
) -> None:
    """Make CARD_ID depend on DEPENDS_ON (a cycle is refused)."""
    with open_store(ctx) as store:
        card = store.link(card_id, depends_on)
        record(store, f"made it depend on {depends_on}", card=card_id)
    _say(card, f"depends on {', '.join(card.depends_on)}", as_json)


@backlog_app.command("block")
def block(
    ctx: typer.Context,
    card_id: str,
    reason: Annotated[str, typer.Option("--reason", "-r")] = "blocked by operator",
    as_json: JsonFlag = False,
) -> None:
    """Park a card: it is never claimed until unblocked (a live lease ends)."""
    with open_store(ctx) as store:
        card = store.block(card_id, reason)
        record(store, f"blocked it: {reason}", card=card_id)
    _say(card, "blocked", as_json)


@backlog_app.command("unblock")
def unblock(ctx: typer.Context, card_id: str, as_json: JsonFlag = False) -> None:
    """Return a blocked (or failed) card to ready."""
    with open_store(ctx) as store:
        card = store.unblock(card_id)
        record(store, "unblocked it", card=card_id)
    _say(card, "ready", as_json)


@backlog_app.command("complete")
def complete(
    ctx: typer.Context,
    card_id: str,
    token: TokenOpt,
    result: Annotated[str | None, typer.Option("--result", help="What came of it.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark a card done (only with its current token)."""
    with open_store(ctx) as store:
        card = store.complete(card_id, token, result)
    _say(card, "done", as_json)


@backlog_app.command("fail")
def fail(
    ctx: typer.Context,
    card_id: str,
    token: TokenOpt,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why it cannot be finished.")],
    as_json: JsonFlag = False,
) -> None:
    """Mark a card failed (only with its current token)."""
    with open_store(ctx) as store:
        card = store.fail(card_id, token, reason)
    _say(card, f"failed: {card.reason}", as_json)


backlog_app.command("stats")(stats)
backlog_app.command("events")(events)


@backlog_app.command("import")
def import_cards(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="YAML list, .jsonl, or a goals file.")],
    allow_unknown: AllowUnknownTarget = False,
    as_json: JsonFlag = False,
) -> None:
    """Create every card of a file in one transaction (all or none)."""
    from fleet_queue.importers import load_cards
    from fleet_queue.targets import check_targets

    cards = load_cards(path)
    check_targets(settings_of(ctx), cards, allow_unknown=allow_unknown)
    with open_store(ctx) as store:
        if len(cards) >= PROGRESS_FROM and not as_json:
            result = _import_with_progress(store, cards)
        else:
            result = store.create_many(cards)
    emit(
        result.to_dict(),
        as_json,
        lambda: get_console().print(
            f"imported {result.created} card(s)"
            + (f"; {len(result.existing)} already there by key" if result.existing else "")
        ),
    )


def _import_with_progress(store: CardStore, cards: list[NewCard]) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=get_console(stderr=True), transient=False) as progress:
        task = progress.add_task("import", total=len(cards))
        return store.create_many(cards, progress=lambda n: progress.advance(task, n))


# --- card: the agent's short form ----------------------------------------------------------


@card_app.command("done")
def card_done(
    ctx: typer.Context,
    card_id: str,
    token: TokenOpt,
    result: Annotated[str | None, typer.Option("--result", help="What came of it.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Report a card finished: exit 0 done, 4 stale token, 3 unknown card."""
    complete(ctx, card_id, token, result, as_json)


@card_app.command("fail")
def card_fail(
    ctx: typer.Context,
    card_id: str,
    token: TokenOpt,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why it cannot be finished.")],
    as_json: JsonFlag = False,
) -> None:
    """Report a card that cannot be finished: exit 0, 4 stale token, 3 unknown card."""
    fail(ctx, card_id, token, reason, as_json)


def register(app: typer.Typer) -> None:
    """Add ``backlog`` and ``card`` to the root app."""
    app.add_typer(backlog_app, name="backlog")
    app.add_typer(card_app, name="card")
