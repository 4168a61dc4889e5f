"""``fleet config``: the effective configuration, secrets masked."""

from __future__ import annotations

import typer

from fleet_queue.cli.common import JsonFlag, emit, print_table, settings_of


def config(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Print the effective configuration (passwords in URLs masked)."""
    data = settings_of(ctx).masked()
    rows = [{"setting": key, "value": value} for key, value in data.items()]
    emit(data, as_json, lambda: print_table(rows, ["setting", "value"]))


def register(app: typer.Typer) -> None:
    app.command("config")(config)
