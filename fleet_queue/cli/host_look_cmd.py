"""``fleet ps`` and ``fleet agent tail|watch|attach|status``: looking at agents, changing nothing.

Registered by ``fleet_queue.cli.host_cmd`` (the host group), which keeps the verbs that
start, stop, type into, add or remove agents.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fleet_queue.cli.common import JsonFlag, emit, print_table, settings_and_roster
from fleet_queue.roster import Roster
from fleet_queue.settings import Settings

PS_COLUMNS = [
    "agent",
    "tenant",
    "host",
    "runtime",
    "class",
    "session",
    "pane",
    "pid",
    "command",
    "idle",
    "heartbeat",
    "readiness",
    "drift",
    "card",
]


def _ps_row(probe: dict[str, Any]) -> dict[str, Any]:
    def flag(value: object) -> str:
        return "-" if value is None else ("yes" if value else "no")

    age = probe["heartbeat_age"]
    hb = "-" if age is None else f"{age:.0f}s {'ok' if probe['health'] else 'stale'}"
    return {
        "agent": probe["agent"],
        "tenant": probe["tenant_id"],
        "host": probe["host"],
        "runtime": probe["runtime"],
        "class": probe["agent_class"],
        "session": flag(probe["session_present"]),
        "pane": "-"
        if probe["pane_alive"] is None
        else ("alive" if probe["pane_alive"] else "dead"),
        "pid": probe["pid"],
        "command": probe["pane_command"],
        "idle": None if probe["idle_seconds"] is None else f"{probe['idle_seconds']:.0f}s",
        "heartbeat": hb,
        "readiness": probe["readiness"],
        "drift": "DRIFT" if probe["drift"] else "",
        "card": probe["current_card"],
    }


_STYLES = {"dead": "red", "stale": "yellow", "unknown": "dim", "working": "cyan"}


LocalFlag = Annotated[
    bool, typer.Option("--local", help="Probe this host's tmux panes instead of the store.")
]

FLEET_COLUMNS = ["agent", "host", "class", "state", "hb", "idle", "card", "spend", "unit"]
"""``spend`` (priced spend today, UTC) is shown once some agent has spent today."""


def ps(ctx: typer.Context, local: LocalFlag = False, as_json: JsonFlag = False) -> None:
    """The whole fleet from the store (every host; stale hosts marked), or --local."""
    if local:
        _ps_local(ctx, as_json)
        return
    from fleet_queue.composition import open_card_store
    from fleet_queue.fleet_view import fleet_rows

    settings, roster = settings_and_roster(ctx)
    store = open_card_store(settings)
    try:
        rows = fleet_rows(store, roster, settings, _local_units(settings, roster))
        pause = store.pause_state()
    finally:
        store.close()
    data = {
        "host": settings.host,
        "tenant_id": settings.tenant,
        "paused": pause.to_dict(),
        "agents": [r.as_dict() for r in rows],
    }
    emit(data, as_json, lambda: _render_fleet(rows, settings, pause.paused, pause.reason))


def _local_units(settings: Settings, roster: Roster) -> dict[str, Any]:
    """This host's agents' systemd units; empty where there is no user systemd."""
    from fleet_queue.fleet_view import UnitInfo
    from workers.systemd_units import local_agents, unit_states, unit_summary

    states = unit_states(local_agents(settings, roster)) or {}
    return {
        name: UnitInfo(unit_summary(state), state.active and not state.enabled)
        for name, state in states.items()
    }


def _render_fleet(rows: list[Any], settings: Settings, paused: bool, reason: str | None) -> None:
    def age(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}s"

    table = [
        {
            "agent": r.agent + ("" if r.in_roster else " (gone)"),
            "host": r.host,
            "class": r.agent_class,
            "state": r.budget.split(":")[0] if r.budget else r.readiness,
            "hb": age(r.heartbeat_age),
            "idle": age(r.idle_seconds),
            "card": r.current_card or "",
            "spend": r.spend_text,
            "unit": r.unit or "-",
        }
        for r in rows
    ]
    title = f"fleet {settings.tenant}" + (f" — PAUSED ({reason or 'no reason'})" if paused else "")
    styles = {
        **_STYLES,
        "stale host": "yellow",
        "unreported": "dim",
        "over budget": "red",
        "ahead of pace": "yellow",
    }
    spent = any(r.tokens_today for r in rows)
    columns = [c for c in FLEET_COLUMNS if spent or c != "spend"]
    print_table(table, columns, title=title, style=lambda row: styles.get(str(row["state"])))
    for r in rows:
        if r.budget:
            typer.echo(f"{r.agent}: {r.budget} (docs/spend.md)")
        if r.unit_warning:
            typer.echo(
                f"{r.agent}: unit active but not enabled; it will not come back after a reboot"
                " (fleet install-systemd --enable)"
            )


def _ps_local(ctx: typer.Context, as_json: bool) -> None:
    """One row per roster agent, then every other session on the fleet socket."""
    from workers.probe import probe_agents, unmanaged_rows

    settings, roster = settings_and_roster(ctx)
    agents = [p.as_dict() for p in probe_agents(settings, roster, include_remote=True)]
    unmanaged = unmanaged_rows(settings, roster)
    data = {
        "host": settings.host,
        "tenant_id": settings.tenant,
        "agents": agents,
        "unmanaged": unmanaged,
    }

    def render() -> None:
        print_table(
            [_ps_row(a) for a in agents],
            PS_COLUMNS,
            title="fleet (local probe)",
            style=lambda row: _STYLES.get(str(row["readiness"])),
        )
        if unmanaged:
            print_table(
                unmanaged,
                ["session", "group", "pane_alive", "pid", "pane_command", "idle_seconds"],
                title="not in the roster",
            )

    emit(data, as_json, render)


def tail(
    ctx: typer.Context,
    name: str,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Lines to show.")] = 40,
    as_json: JsonFlag = False,
) -> None:
    """Print the last lines of an agent's pane."""
    from workers.observe import tail as tail_pane

    settings, roster = settings_and_roster(ctx)
    out = tail_pane(settings, roster, name, lines)
    emit(
        {"agent": name, "host": settings.host, "tenant_id": settings.tenant, "lines": out},
        as_json,
        lambda: typer.echo("\n".join(out)),
    )


def watch(ctx: typer.Context, name: str) -> None:
    """Watch an agent's pane read-only (no key reaches it, its size never changes)."""
    from workers.observe import watch as watch_pane

    settings, roster = settings_and_roster(ctx)
    raise typer.Exit(watch_pane(settings, roster, name))


def attach(ctx: typer.Context, name: str) -> None:
    """Attach to an agent's pane interactively: your keys reach the agent."""
    from workers.observe import attach as attach_pane

    settings, roster = settings_and_roster(ctx)
    raise typer.Exit(attach_pane(settings, roster, name))


def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One agent (default: all).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Roster agents with their session, heartbeat and readiness."""
    from workers.probe import probe_agents

    settings, roster = settings_and_roster(ctx)
    if name is not None:
        roster.known(name)
    rows = [
        p.as_dict()
        for p in probe_agents(settings, roster, include_remote=True)
        if name is None or p.agent == name
    ]
    emit(rows, as_json, lambda: print_table([_ps_row(r) for r in rows], PS_COLUMNS))
