"""What every command group shares: settings from the root options, and output."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fleet_queue.settings import Settings, load_settings

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    """Root options, kept on the Click context for the subcommands."""

    home: Path | None = None

    def settings(self, **overrides: object) -> Settings:
        return load_settings(home=self.home, **overrides)


def settings_of(ctx: typer.Context, **overrides: object) -> Settings:
    state = ctx.find_root().obj
    if not isinstance(state, CliState):
        state = CliState()
    return state.settings(**overrides)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    title: str | None = None,
    style: Callable[[dict[str, Any]], str | None] | None = None,
) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        cells = ["" if row.get(c) is None else str(row.get(c)) for c in columns]
        table.add_row(*cells, style=style(row) if style else None)
    console.print(table)


def emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``render`` for the human form."""
    if as_json:
        print_json(data)
    else:
        render()
