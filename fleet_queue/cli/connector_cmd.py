"""``fleet connector``: talk to the orchestrator from chat (docs/chat.md).

``run`` composes the service: the roster's network adapter (``fleet_queue.connector``)
and the host layer that types and reads replies (``workers.connector_service``); the
CLI, not ``fleet_queue``, imports ``workers``. ``status`` lists the stored messages;
``check`` says whether ``run`` could start here, without contacting the network;
``check --online`` then logs in to it once (receiving nothing) and says as whom.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from fleet_queue.cli.common import JsonFlag, emit, print_table, settings_of
from fleet_queue.connector.config import ChatConfig, chat_config
from fleet_queue.doctor import Check
from fleet_queue.errors import ConfigError, FleetError
from fleet_queue.roster import Roster, load_roster
from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from fleet_queue.connector.base import ChatAdapter

app = typer.Typer(help="The chat connector: people talk to the orchestrator from chat.")
NONE_CONFIGURED = "the roster configures no chat connector (connector.kind)"
ONLINE_TIMEOUT = 30.0
"""Seconds ``check --online`` waits for the network (its libraries retry an unreachable
server on their own): past it, the check fails as unreachable."""
OnlineFlag = Annotated[
    bool,
    typer.Option(
        "--online",
        help="Then log in to the network once (nothing received, nothing sent) and say as whom.",
    ),
]


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
    from fleet_queue.connector.run_lock import connector_lock

    with connector_lock(settings):
        _serve(settings, roster, config, build_adapter(config, settings))


def _serve(settings: Settings, roster: Roster, config: ChatConfig, adapter: ChatAdapter) -> None:
    from fleet_queue.store import CardStore
    from workers.connector_service import ConnectorService  # the CLI composes the host part

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
def check(ctx: typer.Context, as_json: JsonFlag = False, online: OnlineFlag = False) -> None:
    """Could `run` start here: the roster's block, the network's secrets, its library.

    Contacts no chat network unless --online. One line per problem; exit 1 when there is one.
    """
    from fleet_queue.doctor_connector import startup_checks

    settings = settings_of(ctx)
    roster = load_roster(settings.effective_roster_path)
    checks = startup_checks(settings, roster)
    if not checks:
        raise ConfigError(NONE_CONFIGURED)
    problems = [c for c in checks if c.level != "ok"]
    if online and not problems:
        config = chat_config(roster)
        assert config is not None
        checks.append(online_check(config, settings))
        problems = [c for c in checks if c.level != "ok"]

    def render() -> None:
        for c in problems:
            typer.echo(f"{c.name}: {c.detail}" + (f"; {c.hint}" if c.hint else ""))
        if not problems:
            last = checks[-1]
            said = last.detail if last.name == "connector online" else checks[0].detail
            typer.echo(f"chat connector {'online' if online else 'ready'}: {said}")

    emit({"ok": not problems, "checks": [c.to_dict() for c in checks]}, as_json, render)
    if problems:
        raise typer.Exit(1)


def online_check(config: ChatConfig, settings: Settings) -> Check:
    """The adapter's ``check``: log in once and close; its refusal or silence is a failed
    line (the library's own message, never the secret)."""
    from fleet_queue.connector.adapters import build_adapter
    from fleet_queue.connector.base import ChatSecretError
    from fleet_queue.doctor import fail, ok
    from fleet_queue.doctor_connector import SECRETS_HINT, network_doc

    name = "connector online"
    adapter = build_adapter(config, settings)

    async def login() -> str:
        try:
            return await asyncio.wait_for(adapter.check(), ONLINE_TIMEOUT)
        finally:
            await adapter.close()

    try:  # a loop of its own, in a thread of its own: the caller's may be running
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            who = pool.submit(asyncio.run, login()).result()
    except ChatSecretError as exc:
        return fail(name, exc.message, SECRETS_HINT.format(doc=network_doc(config.kind)))
    except TimeoutError:
        return fail(
            name,
            f"{config.kind}: no answer within {ONLINE_TIMEOUT:.0f}s",
            "is the network reachable from here?",
        )
    except FleetError as exc:
        return fail(name, exc.message, f"see {network_doc(config.kind)}")
    return ok(name, f"{config.kind} as {who}")


def register(cli: typer.Typer) -> None:
    cli.add_typer(app, name="connector")
