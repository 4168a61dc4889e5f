"""``fleet up [-d]`` and ``fleet down``: one host's fleet, supervised, and its clean end."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.table import Table

from fleet_queue.cli.common import JsonFlag, console, emit, settings_of

if TYPE_CHECKING:
    from fleet_queue.processes import FleetProcesses
    from fleet_queue.settings import Settings
    from fleet_queue.store import CardStore

BoardPort = Annotated[
    int | None,
    typer.Option("--board", help="Also serve the web board on this loopback port.", min=1),
]
FlowerPort = Annotated[
    int | None, typer.Option("--flower", help="Also run Flower on this loopback port.", min=1)
]


def up(
    ctx: typer.Context,
    beat_too: Annotated[bool, typer.Option("--beat/--no-beat", help="Run beat here too.")] = True,
    keep_agents: Annotated[
        bool, typer.Option(help="Leave agent sessions running on exit.")
    ] = False,
    detach: Annotated[
        bool, typer.Option("-d", "--detach", help="Run in the background; `fleet down` stops it.")
    ] = False,
    board: BoardPort = None,
    flower: FlowerPort = None,
    as_json: JsonFlag = False,
) -> None:
    """Run this host's fleet, supervised, until Ctrl-C, SIGTERM or `fleet down`."""
    from fleet_queue.up import UpOptions

    settings = settings_of(ctx)
    options = UpOptions(
        with_beat=beat_too, keep_agents=keep_agents, board_port=board, flower_port=flower
    )
    if detach:
        from fleet_queue.up_control import start_detached

        state = start_detached(settings, _forwarded(options))
        emit(state, as_json, lambda: console.print(process_table(state["children"], state)))
        return
    _foreground(settings, options)


def _forwarded(options: Any) -> list[str]:
    args = ["--beat" if options.with_beat else "--no-beat"]
    args += ["--keep-agents"] if options.keep_agents else []
    args += ["--board", str(options.board_port)] if options.board_port else []
    args += ["--flower", str(options.flower_port)] if options.flower_port else []
    return args


def _foreground(settings: Settings, options: Any) -> None:
    """A live table on a terminal; one line per change otherwise (a detached ``up``'s log)."""
    from rich.live import Live

    from fleet_queue.serving import stop_on_signals
    from fleet_queue.up import child_rows, running_fleet, supervise
    from workers.fleet_agents import HOST_AGENTS

    with stop_on_signals() as stop, running_fleet(settings, HOST_AGENTS, options) as (store, procs):
        state = {"pid": os.getpid(), "log": str(settings.home / "logs")}
        if sys.stdout.isatty():
            with Live(console=console, refresh_per_second=2) as live:

                def show(restarted: list[str]) -> None:
                    rows = child_rows(settings, procs)
                    live.update(Group(process_table(rows, state), agent_table(store, restarted)))

                supervise(settings, procs, stop.wait, show)
        else:
            _log_lines(settings, procs, stop.wait)
    console.print("fleet stopped")


def _log_lines(settings: Settings, procs: FleetProcesses, wait: Any) -> None:
    from fleet_queue.up import child_rows, supervise

    seen: dict[str, tuple[Any, ...]] = {}

    def show(restarted: list[str]) -> None:
        for row in child_rows(settings, procs):
            key = (row["state"], row["pid"], row["restarts"], row["url"])
            if seen.get(row["name"]) != key:
                seen[row["name"]] = key
                typer.echo(
                    f"{row['name']}: {row['state']} pid={row['pid'] or '-'}"
                    f" restarts={row['restarts']}" + (f" {row['url']}" if row["url"] else "")
                )

    show([])
    supervise(settings, procs, wait, show)


def process_table(rows: list[dict[str, Any]], state: dict[str, Any]) -> Table:
    table = Table(title="fleet up — Ctrl-C or `fleet down` to stop")
    for column in ("process", "state", "pid", "restarts", "url / log"):
        table.add_column(column)
    styles = {"running": "green", "restarting": "yellow", "unreachable": "red", "stopped": "dim"}
    for row in rows:
        table.add_row(
            row["name"],
            f"[{styles.get(row['state'], '')}]{row['state']}[/]"
            if styles.get(row["state"])
            else row["state"],
            str(row["pid"] or "-"),
            str(row["restarts"]),
            row["url"] or row["log"] or "",
        )
    table.caption = f"supervisor pid {state.get('pid')}; log {state.get('log')}"
    return table


def agent_table(store: CardStore, restarted: list[str]) -> Table:
    table = Table(title="agents")
    for column in ("agent", "host", "readiness", "card", "heartbeat"):
        table.add_column(column)
    for row in store.agent_statuses():
        table.add_row(
            row.agent, row.host, row.readiness, row.current_card or "",
            "ok" if row.health else "stale",
        )  # fmt: skip
    counts = ", ".join(f"{k}={v}" for k, v in store.stats().get("counts", {}).items()) or "none"
    table.caption = f"cards: {counts}" + (
        f" | restarted: {', '.join(restarted)}" if restarted else ""
    )
    return table


def down(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for `fleet up` to stop.")] = 90.0,
    as_json: JsonFlag = False,
) -> None:
    """Stop `fleet up` (detached or not): worker, beat, broker, agents, tmux server.

    Exit 0 when nothing is left; 1 with one line naming what would not stop.
    """
    from fleet_queue.up_control import bring_down
    from workers.fleet_agents import HOST_AGENTS

    settings = settings_of(ctx)
    report = bring_down(settings, HOST_AGENTS, timeout)
    emit(
        report.as_dict(),
        as_json,
        lambda: typer.echo(
            f"stopped {report.stopped[0]}, its processes and agents"
            if report.stopped
            else "no fleet up was running; agents and tmux server stopped"
        ),
    )


def broker(ctx: typer.Context) -> None:
    """Run the embedded broker in the foreground (what `fleet up` and fleet-broker.service run)."""
    import os

    from fleet_queue.broker import broker_reachable, embedded_broker_command
    from fleet_queue.errors import ConflictError, UsageError

    settings = settings_of(ctx)
    if not settings.broker_is_embedded:
        raise UsageError("FLEET_BROKER_URL is set: the broker is external, nothing to run here")
    if broker_reachable(settings):
        raise ConflictError(
            f"the embedded broker already runs on {settings.embedded_broker_socket}"
        )
    command = embedded_broker_command(settings)
    os.execv(command[0], command)  # redis-server itself gets systemd's signals


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("up")(up)
    app.command("down")(down)
    app.command("broker")(broker)
