"""``fleet spend``: the ledger of the agents' tokens and cost, and ``fleet spend scan``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

import typer

from fleet_queue.cli.common import JsonFlag, emit, print_table, settings_of
from fleet_queue.errors import UsageError

spend_app = typer.Typer(
    help="Spend: tokens and cost per agent, card, model and day (docs/spend.md).",
    no_args_is_help=False,
    invoke_without_command=True,
)

COLUMNS = ["input", "output", "cache read", "cache write", "cost"]


def _since(days: int, since: str | None, today: str) -> str:
    if since is not None:
        try:
            return date.fromisoformat(since).isoformat()
        except ValueError:
            raise UsageError(f"--since {since!r}: not a day (YYYY-MM-DD)") from None
    if days < 1:
        raise UsageError("--days must be at least 1")
    return (date.fromisoformat(today) - timedelta(days=days - 1)).isoformat()


@spend_app.callback()
def spend(
    ctx: typer.Context,
    by: Annotated[str, typer.Option("--by", help="Group by agent, card, model or day.")] = "agent",
    days: Annotated[int, typer.Option("--days", help="Days back, today included (UTC).")] = 1,
    since: Annotated[
        str | None, typer.Option("--since", help="From this UTC day (YYYY-MM-DD) instead.")
    ] = None,
    all_tenants: Annotated[
        bool, typer.Option("--all-tenants", help="Every tenant, not only FLEET_TENANT.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Spend today (or --days/--since), summed --by agent, card, model or day."""
    if ctx.invoked_subcommand is not None:
        return
    from fleet_queue.composition import open_card_store
    from fleet_queue.spend.ledger import day_of
    from fleet_queue.spend.report import BY_CHOICES, summed, total

    if by not in BY_CHOICES:
        raise UsageError(f"--by {by!r}: one of {', '.join(BY_CHOICES)}")
    settings = settings_of(ctx)
    store = open_card_store(settings)
    try:
        today = day_of(store.now())
        first = _since(days, since, today)
        rows = store.spend_rows(first, today, all_tenants=all_tenants)
    finally:
        store.close()
    groups = summed(rows, by)
    whole = total(rows)
    data = {
        "tenant_id": None if all_tenants else settings.tenant,
        "since": first,
        "until": today,
        "by": by,
        "groups": [g.as_dict(by) for g in groups],
        "total": whole.as_dict("total"),
    }

    def render() -> None:
        table = [_cells(by, g.key, g) for g in [*groups, whole]]
        table[-1][by] = "total"
        print_table(table, [by, *COLUMNS], title=f"spend {first} .. {today} (UTC)")

    emit(data, as_json, render)


def _cells(by: str, key: str, group: object) -> dict[str, object]:
    from fleet_queue.spend.report import SpendSum

    assert isinstance(group, SpendSum)
    t = group.tokens
    return {
        by: key,
        "input": t.input,
        "output": t.output,
        "cache read": t.cache_read,
        "cache write": t.cache_write,
        "cost": group.cost_text(),
    }


@spend_app.command("scan")
def scan(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Read this host's agents' transcripts and rollouts into the ledger now, then act on
    the budgets (the host worker does this every status interval)."""
    from fleet_queue.composition import open_card_store
    from fleet_queue.roster import load_roster
    from workers.spend_scan import scan_host

    settings = settings_of(ctx)
    roster = load_roster(settings.effective_roster_path)
    store = open_card_store(settings)
    try:
        report = scan_host(settings, roster, store)
    finally:
        store.close()
    data = report.as_dict()

    def render() -> None:
        typer.echo(f"read {report.files} file(s): {report.turns} turn(s) into {report.rows} row(s)")
        for line in report.conflicts:
            typer.echo(f"skipped: {line}")
        for agent, why in report.held.items():
            typer.echo(f"{agent}: {why}")

    emit(data, as_json, render)


def register(app: typer.Typer) -> None:
    app.add_typer(spend_app, name="spend")
