"""``fleet roster``, ``fleet presets``, ``fleet profiles``, ``fleet roles`` and ``fleet init``.

Thin: each command resolves a path or a name, calls :mod:`fleet_queue.roster`,
:mod:`fleet_queue.catalog` or :mod:`fleet_queue.init_wizard`, and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fleet_queue.cli.common import JsonFlag, emit, print_json, print_table, settings_of
from fleet_queue.roster import Roster, load_roster, roster_json_schema

PathArg = Annotated[
    Path | None,
    typer.Argument(help="Roster file [default: FLEET_HOME/roster.yaml or FLEET_ROSTER_PATH]."),
]

AGENT_COLUMNS = ["name", "class", "role", "runtime", "model_hint", "host", "tenant", "reports_to"]

roster_app = typer.Typer(help="Check and show the roster (roster.yaml).", no_args_is_help=True)


def _roster_path(ctx: typer.Context, path: Path | None) -> Path:
    return path if path is not None else settings_of(ctx).effective_roster_path


def agent_rows(roster: Roster) -> list[dict[str, Any]]:
    """One row per agent, host and tenant left blank when they follow the settings."""
    return [
        {
            "name": agent.name,
            "class": agent.agent_class,
            "role": agent.role,
            "runtime": agent.runtime,
            "model_hint": agent.model_hint,
            "host": agent.host,
            "tenant": agent.tenant_id,
            "reports_to": agent.reports_to,
        }
        for agent in roster.agents
    ]


@roster_app.command("validate")
def validate(ctx: typer.Context, path: PathArg = None) -> None:
    """Check a roster; print `ok: N agents`, or one line naming file, agent and field (exit 2)."""
    roster = load_roster(_roster_path(ctx, path))
    typer.echo(f"ok: {len(roster.agents)} agents")


@roster_app.command("show")
def show(ctx: typer.Context, path: PathArg = None, as_json: JsonFlag = False) -> None:
    """Print the roster's agents as a table, or the whole roster as JSON."""
    source = _roster_path(ctx, path)
    roster = load_roster(source)
    data = roster.model_dump(mode="json", by_alias=True)
    origin = roster.origin()
    title = f"{source}" + (f" ({origin})" if origin else "")
    emit(data, as_json, lambda: print_table(agent_rows(roster), AGENT_COLUMNS, title=title))


@roster_app.command("schema")
def schema() -> None:
    """Print the roster's JSON Schema (generated from the model; shipped as roster.schema.json)."""
    print_json(roster_json_schema())


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(roster_app, name="roster")
