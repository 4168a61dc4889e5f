"""``fleet connector``: talk to the orchestrator from chat (docs/chat.md).

``run`` composes the service: the roster's network adapter (``fleet_queue.connector``)
and the host layer that types and reads replies (``workers.connector_service``); the
CLI, not ``fleet_queue``, imports ``workers``. ``status`` lists the stored messages;
``check`` says whether ``run`` could start here, without contacting the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Annotated

import typer

from fleet_queue.cli.common import JsonFlag, emit, print_table, settings_of
from fleet_queue.connector.config import chat_config
from fleet_queue.errors import ConfigError
from fleet_queue.roster import load_roster

app = typer.Typer(help="The chat connector: people talk to the orchestrator from chat.")
NONE_CONFIGURED = "the roster configures no chat connector (connector.kind)"


@app.command("run")
def run(ctx: typer.Context) -> None:
    """Serve the roster's chat network until SIGTERM or Ctrl-C."""
    settings = settings_of(ctx)
    roster = load_roster(settings.effective_roster_path)
    config = chat_config(roster)
    if config is None:
        raise ConfigError(NONE_CONFIGURED)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from fleet_queue.connector.adapters import build_adapter
    from fleet_queue.store import CardStore
    from workers.connector_service import ConnectorService  # the CLI composes the host part

    adapter = build_adapter(config, settings)
    store = CardStore.from_settings(settings)  # no tick nudge: a chat row frees no card
    service = ConnectorService(settings, roster, config, adapter, store)
    typer.echo(
        f"chat connector: {config.kind}{f' as {config.user_id}' if config.user_id else ''},"
        f" answering agent {service.agent}"
    )

    async def main() -> None:
        task = asyncio.create_task(service.serve())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        store.close()


@app.command("status")
def status(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Newest messages shown.")] = 20,
) -> None:
    """The chat messages in the store: queued, delivered, answered, failed."""
    from fleet_queue.store import CardStore

    with CardStore.from_settings(settings_of(ctx)) as store:
        records = store.chat_list()[-limit:]
    data = [
        {
            "id": r.id, "network": r.network, "room": r.room, "sender": r.sender,
            "state": str(r.state), "turn": r.turn_id, "text": r.text, "reply": r.reply,
            "reason": r.reason,
        }
        for r in records
    ]  # fmt: skip
    rows = [
        {**d, "text": r.text[:40], "reply": (r.reply or "")[:40]}
        for d, r in zip(data, records, strict=True)
    ]
    emit(
        data, as_json, lambda: print_table(rows, ["id", "sender", "state", "turn", "text", "reply"])
    )


@app.command("check")
def check(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Could `run` start here: the roster's block, the network's secrets, its library.

    Contacts no chat network. One line per problem; exit 1 when there is one.
    """
    from fleet_queue.doctor_connector import startup_checks

    settings = settings_of(ctx)
    checks = startup_checks(settings, load_roster(settings.effective_roster_path))
    if not checks:
        raise ConfigError(NONE_CONFIGURED)
    problems = [c for c in checks if c.level != "ok"]

    def render() -> None:
        for c in problems:
            typer.echo(f"{c.name}: {c.detail}" + (f"; {c.hint}" if c.hint else ""))
        if not problems:
            typer.echo(f"chat connector ready: {checks[0].detail}")

    emit({"ok": not problems, "checks": [c.to_dict() for c in checks]}, as_json, render)
    if problems:
        raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    cli.add_typer(app, name="connector")
