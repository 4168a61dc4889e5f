"""``fleet`` loads only the command group it is asked for, so the table that says which
module registers which command must match the modules."""

from __future__ import annotations

import importlib

import typer

from fleet_queue.cli import GROUPS, groups_for


def test_the_group_table_matches_what_each_module_registers() -> None:
    for module, names in GROUPS.items():
        app = typer.Typer()
        importlib.import_module(f"fleet_queue.cli.{module}").register(app)
        registered = [c.name for c in app.registered_commands]
        registered += [g.name for g in app.registered_groups]
        assert tuple(registered) == names, module


def test_a_command_loads_its_group_and_help_loads_all() -> None:
    assert groups_for(["card", "done", "a1", "--token", "1"]) == ("backlog_cmd",)
    assert groups_for(["--home", "/srv/fleet", "ps"]) == ("host_cmd",)
    assert groups_for(["--home=/srv/fleet", "tick"]) == ("dispatch_cmd",)
    assert groups_for(["--help"]) == tuple(GROUPS)
    assert groups_for(["no-such-command"]) == tuple(GROUPS)
