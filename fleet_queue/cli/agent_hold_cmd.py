"""``fleet agent pause|resume NAME``: hold one agent out of dispatch, like the fleet's pause.

The pause is an event in the store (``CardStore.pause_agent``, with the actor), so it holds
on every host: the tick claims nothing for the agent, its host worker releases a delivery
already on its way (the card goes back to ``ready`` with the reason) and reports the agent
``paused`` in ``fleet ps``. Resume nudges a tick.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fleet_queue.cli.common import JsonFlag, emit, settings_of


def pause_agent(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Roster agent.")],
    reason: Annotated[str, typer.Option(help="Why, shown in ps and the board.")] = "operator pause",
    as_json: JsonFlag = False,
) -> None:
    """Give this agent no card until `fleet agent resume NAME`."""
    from fleet_queue.audit import actor
    from fleet_queue.composition import open_card_store
    from fleet_queue.roster import load_roster

    settings = settings_of(ctx)
    load_roster(settings.effective_roster_path).known(name)
    by = actor()
    with open_card_store(settings) as store:
        store.pause_agent(name, reason, by)
    emit(
        {"agent": name, "paused": True, "reason": reason, "by": by},
        as_json,
        lambda: typer.echo(f"paused {name}: {reason}"),
    )


def resume_agent(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Roster agent.")],
    as_json: JsonFlag = False,
) -> None:
    """Let this agent take cards again, and nudge a tick."""
    from fleet_queue.audit import actor
    from fleet_queue.composition import open_card_store
    from fleet_queue.roster import load_roster

    settings = settings_of(ctx)
    load_roster(settings.effective_roster_path).known(name)
    by = actor()
    with open_card_store(settings) as store:
        store.resume_agent(name, by)
    emit(
        {"agent": name, "paused": False, "by": by},
        as_json,
        lambda: typer.echo(f"resumed {name}"),
    )


def register(agent_app: typer.Typer) -> None:
    """Add ``pause`` and ``resume`` to ``fleet agent`` (``fleet_queue.cli.host_cmd``)."""
    agent_app.command("pause")(pause_agent)
    agent_app.command("resume")(resume_agent)
