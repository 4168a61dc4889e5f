"""``fleet board``: the backlog by column, once, live (``--watch``) or on the web (``--serve``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fleet_queue.cli.common import JsonFlag, settings_of
from fleet_queue.errors import UsageError

if TYPE_CHECKING:  # rich, SQLAlchemy and the server load only when the command runs
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

    from fleet_queue.board import Board, BoardCard, BoardColumn
    from fleet_queue.roster import Roster
    from fleet_queue.store import CardStore

DEFAULT_INTERVAL = 3.0
DEFAULT_PORT = 8765
LIVE_INTERVAL = 1.0
"""The web console looks at the store at least this often for its live panels."""
WIDE_COLUMN = 24
"""Side by side needs this many terminal columns per board column; else one section each."""
TITLE_WIDTH = 40
"""Titles are cut to this many characters in the section tables."""

_FIELDS = {
    "ready": ("id", "title", "pri", "target", "age", "in col"),
    "waiting": ("id", "title", "pri", "target", "deps", "age"),
    "claimed": ("id", "title", "pri", "owner", "token", "in col", "lease"),
    "delivered": ("id", "title", "pri", "owner", "token", "in col", "lease"),
    "blocked": ("id", "title", "pri", "target", "in col", "reason"),
    "done": ("id", "title", "pri", "owner", "token", "in col"),
    "failed": ("id", "title", "pri", "owner", "token", "in col", "reason"),
}
_STYLES = {"blocked": "yellow", "failed": "red", "done": "green", "delivered": "cyan"}


def board(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="Done and failed cards shown, newest first.")
    ] = 20,
    watch: Annotated[bool, typer.Option("--watch", help="Redraw until Ctrl-C.")] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", help="Seconds between redraws (the web console: at most 1)."),
    ] = DEFAULT_INTERVAL,
    serve: Annotated[
        bool, typer.Option("--serve", help="Serve the web console (auth: FLEET_BOARD_AUTH).")
    ] = False,
    bind: Annotated[str, typer.Option("--bind", help="Address the web board listens on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port of the web board.")] = DEFAULT_PORT,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="The web console only watches (FLEET_CONSOLE_READ_ONLY)."),
    ] = False,
) -> None:
    """The backlog by column: ready, waiting, claimed, delivered, blocked, done, failed."""
    _check_options(as_json, limit, watch, interval, serve, port)
    if read_only and not serve:
        raise UsageError("--read-only goes with --serve")
    settings = settings_of(ctx, **({"console_read_only": True} if read_only else {}))
    if serve:
        from fleet_queue.console.app import serve_console
        from workers.pane_stream import TmuxTerminal  # the CLI composes: the console gets panes

        def ready(url: str, login: str | None) -> None:
            typer.echo(f"serving the board on {url} (Ctrl-C to stop)")
            if login is not None:
                typer.echo(f"log in: {login}")

        serve_console(
            settings,
            bind,
            port,
            limit=limit,
            interval=min(interval, LIVE_INTERVAL),
            on_ready=ready,
            terminal_factory=TmuxTerminal,
        )
        return

    from fleet_queue.board import board_roster, build_board
    from fleet_queue.cli.common import console, print_json
    from fleet_queue.composition import open_card_store

    roster = board_roster(settings)
    with open_card_store(settings) as store:
        if as_json:
            print_json(build_board(store, limit, roster).to_dict())
        elif watch:
            _watch(store, limit, interval, roster)
        else:
            console.print(render_board(build_board(store, limit, roster), console.width))


def _check_options(
    as_json: bool, limit: int, watch: bool, interval: float, serve: bool, port: int
) -> None:
    """Refuse a bad option with one line (Click would print its usage block)."""
    if limit < 0:
        raise UsageError(f"--limit must be 0 or more, not {limit}")
    if not interval > 0:
        raise UsageError(f"--interval must be more than 0 seconds, not {interval}")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0-65535, not {port}")
    chosen = [
        name for name, on in (("--json", as_json), ("--watch", watch), ("--serve", serve)) if on
    ]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} do not go together: choose one")


def _watch(store: CardStore, limit: int, interval: float, roster: Roster | None) -> None:
    """Redraw in place every ``interval`` seconds; Ctrl-C or SIGTERM ends it with exit 0."""
    from rich.live import Live

    from fleet_queue.board import build_board
    from fleet_queue.cli.common import console
    from fleet_queue.serving import stop_on_signals

    def frame() -> RenderableType:
        return render_board(build_board(store, limit, roster), console.width)

    with stop_on_signals() as stop, Live(frame(), console=console, auto_refresh=False) as live:
        while not stop.wait(interval):
            live.update(frame(), refresh=True)


# --- terminal rendering ------------------------------------------------------------------


def render_board(board: Board, width: int) -> RenderableType:
    """Columns side by side when ``width`` allows, else one table per column."""
    from rich.console import Group

    header = _header(board)
    if width >= WIDE_COLUMN * len(board.columns):
        return Group(header, _side_by_side(board))
    return Group(header, *(_section(column) for column in board.columns))


def _header(board: Board) -> RenderableType:
    from rich.text import Text

    text = Text()
    text.append(f"fleet board {board.tenant}", style="bold")
    if board.pause.paused:
        text.append(" — PAUSED", style="bold red")
        text.append(f" ({board.pause.reason or 'no reason'})", style="red")
    text.append(f"  {board.now:%Y-%m-%d %H:%M:%S} UTC\n", style="dim")
    text.append(" · ".join(f"{key} {value}" for key, value in board.counts.items()))
    if board.spend_today_text:
        tokens = (board.spend_today or {}).get("tokens", 0)
        text.append(f"\nspend today {board.spend_today_text} ({tokens} tokens)")
    return text


def _side_by_side(board: Board) -> Table:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from fleet_queue.board import lease_left, short_duration, target_of

    table = Table(expand=True, show_lines=False)
    cells = []
    for column in board.columns:
        table.add_column(
            Text(f"{column.key} {column.count}"),
            ratio=1,
            overflow="ellipsis",
            header_style=_STYLES.get(column.key, "bold"),
        )
        lines: list[Text] = []
        for card in column.cards:
            lines.append(_one_line(f"{card.id} p{card.priority}", style="bold"))
            lines.append(_one_line(card.title))
            meta = [target_of(card)]
            if card.lease_owner and column.key not in ("ready", "waiting", "blocked"):
                meta.append(f"{card.lease_owner} #{card.token}")
            if column.key == "waiting":
                meta.append(f"{card.unmet_deps} deps")
            meta.append(short_duration(card.in_column_seconds))
            if column.key in ("claimed", "delivered"):
                meta.append(f"lease {lease_left(card)}")
            if card.spend_text:
                meta.append(card.spend_text)
            lines.append(_one_line(" ".join(meta), style="dim"))
            if card.reason:
                lines.append(_one_line(card.reason, style="italic"))
        if column.hidden:
            lines.append(_one_line(f"+{column.hidden} more", style="dim"))
        cells.append(Group(*lines))
    table.add_row(*cells)
    return table


def _one_line(text: str, style: str = "") -> Text:
    from rich.text import Text

    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _section(column: BoardColumn) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    title = Text(f"{column.key} ({column.count})", style="bold")
    if not column.cards:
        return title
    fields = _FIELDS[column.key]
    if any(card.spend_text for card in column.cards):  # shown once some card has spent
        fields = (*fields, "spend")
    table = Table(
        title=title,
        title_justify="left",
        border_style=_STYLES.get(column.key),
        caption=f"+{column.hidden} more" if column.hidden else None,
        caption_justify="left",
    )
    for name in fields:
        if name == "title":
            table.add_column(name, overflow="ellipsis", no_wrap=True, max_width=TITLE_WIDTH)
        elif name == "reason":
            table.add_column(name, overflow="fold", min_width=10)
        else:
            # short values: never squeezed to "…", the title gives way first
            width = max([len(name), *(len(_cell(card, name)) for card in column.cards)])
            table.add_column(name, no_wrap=True, min_width=min(width, 24))
    for card in column.cards:
        table.add_row(*(Text(_cell(card, name)) for name in fields))
    return table


def _cell(card: BoardCard, name: str) -> str:
    from fleet_queue.board import lease_left, short_duration, target_of

    values = {
        "id": card.id,
        "title": _shorten(card.title, TITLE_WIDTH),
        "pri": str(card.priority),
        "target": target_of(card),
        "owner": card.lease_owner or "",
        "token": str(card.token),
        "deps": str(card.unmet_deps),
        "age": short_duration(card.age_seconds),
        "in col": short_duration(card.in_column_seconds),
        "lease": lease_left(card),
        "reason": card.reason or "",
        "spend": card.spend_text,
    }
    return values[name]


def _shorten(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def register(app: typer.Typer) -> None:
    app.command("board")(board)
