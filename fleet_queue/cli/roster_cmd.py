"""``fleet roster``, ``fleet presets``, ``fleet profiles``, ``fleet roles`` and ``fleet init``.

Thin: each command resolves a path or a name, calls :mod:`fleet_queue.roster`,
:mod:`fleet_queue.catalog` or :mod:`fleet_queue.init_wizard`, and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fleet_queue import catalog, init_wizard
from fleet_queue.cli.common import (
    JsonFlag,
    console,
    emit,
    print_json,
    print_table,
    settings_of,
)
from fleet_queue.errors import UsageError
from fleet_queue.roster import Roster, load_roster, roster_json_schema, write_roster

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


presets_app = typer.Typer(help="Shipped presets: complete rosters to start from.")
profiles_app = typer.Typer(help="System-type profiles: org charts that expand to a roster.")
roles_app = typer.Typer(help="The role library: one markdown contract per role.")

NameArg = Annotated[str, typer.Argument(help="Name as shown by `list`.")]


def _roster_summary(roster: Roster) -> str:
    return ", ".join(agent.name for agent in roster.agents)


@presets_app.command("list")
def presets_list(as_json: JsonFlag = False) -> None:
    """List the presets."""
    presets = catalog.list_presets()
    rows = [
        {
            "name": p.name,
            "title": p.title,
            "agents": len(p.roster.agents),
            "description": p.description,
        }
        for p in presets
    ]
    emit(rows, as_json, lambda: print_table(rows, ["name", "agents", "description"]))


@presets_app.command("show")
def presets_show(name: NameArg, as_json: JsonFlag = False) -> None:
    """Show one preset's roster."""
    preset = catalog.load_preset(name)
    data = {
        "name": preset.name,
        "title": preset.title,
        "description": preset.description,
        "roster": preset.roster.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    emit(data, as_json, lambda: _render_template(catalog.template_of_preset(preset)))


@profiles_app.command("list")
def profiles_list(as_json: JsonFlag = False) -> None:
    """List the system-type profiles."""
    rows = []
    for profile in catalog.list_profiles():
        roster = catalog.expand_profile(profile)
        rows.append(
            {
                "name": profile.name,
                "title": profile.title,
                "lead": profile.lead,
                "agents": len(roster.agents),
                "description": profile.description,
            }
        )
    emit(rows, as_json, lambda: print_table(rows, ["name", "lead", "agents", "description"]))


@profiles_app.command("show")
def profiles_show(name: NameArg, as_json: JsonFlag = False) -> None:
    """Show one profile: its seats and the roster they expand to."""
    profile = catalog.load_profile(name)
    roster = catalog.expand_profile(profile)
    data = {
        **profile.model_dump(mode="json", by_alias=True, exclude_none=True),
        "roster": roster.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    emit(data, as_json, lambda: _render_template(catalog.template_of_profile(profile)))


def _render_template(template: catalog.Template) -> None:
    console.print(f"[bold]{template.kind} {template.name}[/bold] — {template.title}")
    console.print(template.description)
    if template.floor:
        console.print(f"floor (always staffed): {', '.join(template.floor)}")
    print_table(agent_rows(template.roster), AGENT_COLUMNS)


@roles_app.command("list")
def roles_list(
    domain: Annotated[str | None, typer.Option("--domain", help="Only this domain.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the role library, grouped by domain."""
    rows = [role.as_dict() for role in catalog.list_roles(domain)]
    emit(rows, as_json, lambda: print_table(rows, ["domain", "name", "class", "summary"]))


@roles_app.command("show")
def roles_show(name: NameArg, as_json: JsonFlag = False) -> None:
    """Print one role contract."""
    role = catalog.load_role(name)
    emit(
        {**role.as_dict(), "body": role.body},
        as_json,
        lambda: typer.echo(
            f"{role.name} (class {role.agent_class}, domain {role.domain}, "
            f"persistent {str(role.persistent).lower()})\n\n{role.body}"
        ),
    )


def _show_roster(roster: Roster, title: str) -> None:
    print_table(agent_rows(roster), AGENT_COLUMNS, title=title)


def _ask(question: str, default: str) -> str:
    return str(typer.prompt(question, default=default, show_default=bool(default)))


def _confirm(question: str, default: bool) -> bool:
    return bool(typer.confirm(question, default=default))


def _choices(
    runtime: list[str], model: list[str], add: list[str], remove: list[str]
) -> init_wizard.InitChoices:
    return init_wizard.InitChoices(
        runtimes=init_wizard.parse_pairs(runtime, "--runtime", "RUNTIME"),
        models=init_wizard.parse_pairs(model, "--model", "MODEL"),
        add=[init_wizard.parse_added(value) for value in add],
        remove=remove,
    )


def init(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Profile (or, failing that, preset) to start from; skips the wizard.",
        ),
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Preset to start from; skips the wizard.")
    ] = None,
    runtime: Annotated[
        list[str],
        typer.Option("--runtime", help="CLASS=RUNTIME for every agent of a class (repeatable)."),
    ] = [],  # noqa: B006
    model: Annotated[
        list[str],
        typer.Option("--model", help="CLASS=MODEL hint for every agent of a class (repeatable)."),
    ] = [],  # noqa: B006
    add: Annotated[
        list[str], typer.Option("--add", help="NAME=CLASS[:RUNTIME]: an extra worker (repeatable).")
    ] = [],  # noqa: B006
    remove: Annotated[
        list[str],
        typer.Option(
            "--remove", help="NAME: leave this agent out; floor agents stay (repeatable)."
        ),
    ] = [],  # noqa: B006
    write: Annotated[
        bool, typer.Option("--write", help="Write roster.yaml (without it, the roster is printed).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing roster.yaml.")
    ] = False,
    reconfigure: Annotated[
        bool,
        typer.Option(
            "--reconfigure",
            help="Regenerate from the recorded (or given) preset/profile, keeping your changes.",
        ),
    ] = False,
) -> None:
    """Create roster.yaml: a wizard, or --profile/--preset for scripts (see docs/roster.md)."""
    path = settings_of(ctx).effective_roster_path
    if profile and preset:
        raise UsageError("--profile and --preset: choose one")
    choices = _choices(runtime, model, add, remove)
    named = (profile, "profile") if profile else (preset, "preset") if preset else None
    if reconfigure:
        _reconfigure(path, named, choices)
        return
    if named is None:
        if runtime or model or add or remove:
            raise UsageError("--runtime/--model/--add/--remove need --profile or --preset")
        _interactive(path, force)
        return
    name, kind = named
    template = catalog.load_template(name, "preset" if kind == "preset" else None)
    roster = init_wizard.build_roster(template, choices)
    if not write:
        typer.echo(roster.to_yaml(), nl=False)
        return
    init_wizard.write_new(roster, path, force)
    typer.echo(f"wrote {path}: {len(roster.agents)} agents ({roster.origin()})")


def _interactive(path: Path, force: bool) -> None:
    wizard = init_wizard.Wizard(
        ask=_ask, confirm=_confirm, show=typer.echo, show_roster=_show_roster
    )
    roster = wizard.run(path, force)
    if roster is None:
        typer.echo("nothing written")
        return
    write_roster(roster, path)
    typer.echo(f"wrote {path}: {len(roster.agents)} agents ({roster.origin()})")


def _reconfigure(
    path: Path, named: tuple[str, str] | None, choices: init_wizard.InitChoices
) -> None:
    existing = load_roster(path)
    recorded = existing.preset or existing.profile
    base = init_wizard.recorded_template(existing, path) if recorded or not named else None
    if named is None:
        target = init_wizard.recorded_template(existing, path)
    else:
        name, kind = named
        target = catalog.load_template(name, "preset" if kind == "preset" else None)
    report = init_wizard.reconfigure(existing, target, base, choices)
    write_roster(report.roster, path)
    typer.echo(
        f"reconfigured {path}: {len(report.roster.agents)} agents"
        f" ({report.roster.origin()}); {report.summary()}"
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.add_typer(roster_app, name="roster")
    app.add_typer(presets_app, name="presets")
    app.add_typer(profiles_app, name="profiles")
    app.add_typer(roles_app, name="roles")
    app.command("init")(init)
