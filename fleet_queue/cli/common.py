"""What every command group shares: settings from the root options, and output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet_queue.settings import Settings, load_settings

if TYPE_CHECKING:
    from rich.console import Console

    from fleet_queue.roster import Roster
    from fleet_queue.store import CardStore

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


_consoles: dict[bool, Console] = {}


def get_console(stderr: bool = False) -> Console:
    """Rich's console, made on first use: a command that prints one plain line
    (``fleet card done``) does not pay for importing rich."""
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr)
    return _consoles[stderr]


def __getattr__(name: str) -> Console:
    """``console`` and ``err_console`` as module attributes, made on first use."""
    if name in {"console", "err_console"}:
        return get_console(stderr=name == "err_console")
    raise AttributeError(name)


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


def settings_and_roster(ctx: typer.Context) -> tuple[Settings, Roster]:
    """Settings and the roster they name; the roster (pydantic, YAML) is loaded only here."""
    from fleet_queue.roster import load_roster

    settings = settings_of(ctx)
    return settings, load_roster(settings.effective_roster_path)


@contextmanager
def open_store(ctx: typer.Context) -> Iterator[CardStore]:
    """The store of the effective settings (migrated on first use), closed afterwards."""
    from fleet_queue.composition import open_card_store

    store = open_card_store(settings_of(ctx))
    try:
        yield store
    finally:
        store.close()


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    title: str | None = None,
    style: Callable[[dict[str, Any]], str | None] | None = None,
) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        cells = ["" if row.get(c) is None else str(row.get(c)) for c in columns]
        table.add_row(*cells, style=style(row) if style else None)
    get_console().print(table)


def emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``render`` for the human form."""
    if as_json:
        print_json(data)
    else:
        render()
