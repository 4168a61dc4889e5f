"""``fleet doctor``'s and ``fleet connector check``'s look at the chat connector.

Only a roster with a ``connector:`` block gets these lines. Whether the connector can
start at all (the block, its network's secrets, its library) fails; whether it runs and
what waits in the store warns: chat still reaches the store, and is answered once the
connector is back. Nothing here contacts the chat network, starts or writes anything.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable

from fleet_queue.connector.base import OPEN_STATES, ChatRecord, ChatSecretError, ChatState
from fleet_queue.connector.config import ChatConfig, answering_agent, chat_config
from fleet_queue.doctor import Check, fail, guarded, ok, open_store_as_is, warn
from fleet_queue.errors import FleetError
from fleet_queue.roster import Roster, load_roster
from fleet_queue.settings import Settings

SECRETS: dict[str, tuple[tuple[str, ...], ...]] = {
    "matrix": (("matrix_password", "matrix_token"),),
    "telegram": (("telegram_token",),),
    "slack": (("slack_bot_token",), ("slack_app_token",)),
    "discord": (("discord_token",),),
}
"""Each network's secret settings: one of each group must be set."""
LIBRARIES = {
    "matrix": ("nio", "matrix-nio"),
    "telegram": ("telegram", "python-telegram-bot"),
    "slack": ("slack_sdk", "slack_sdk"),
    "discord": ("discord", "discord.py"),
}
"""The module and distribution each network's adapter uses (the ``chat`` extra): an
adapter may import its library only when built, so the module alone proves nothing."""
QUEUED_LONG = 600.0
"""Seconds a message may wait ``queued`` (a busy orchestrator) before the doctor warns."""
FAILED_RECENT = 86400.0
"""Failed messages this recent are shown; older ones are history (``fleet connector status``)."""
SECRETS_HINT = "set it in FLEET_HOME/fleet.env, mode 0600 ({doc})"
UNIT = "fleet-connector.service"

UnitActive = Callable[[], bool | None]
"""Whether ``fleet-connector.service`` is active (None: no user systemd); the host layer's."""


def env_name(field: str) -> str:
    return f"FLEET_{field.upper()}"


def check_config(roster: Roster, config: ChatConfig, settings: Settings) -> Check:
    agent = roster.agent(answering_agent(roster, config))
    who = f" as {config.user_id}" if config.user_id else ""
    return ok(
        "connector",
        f"{config.kind}{who}, {len(config.rooms)} room(s), answering agent {agent.name}"
        f" on host {agent.host_or(settings.host)}",
    )


def check_library(config: ChatConfig) -> Check:
    """The adapter's module (what ``build_adapter`` imports) and its network's library,
    without building the adapter (that needs the secrets)."""
    module, dist = LIBRARIES[config.kind]
    try:
        importlib.import_module(f"fleet_queue.connector.{config.kind}")
        importlib.import_module(module)
    except ImportError as exc:
        return fail(
            "connector library",
            f"the {config.kind} connector cannot load ({exc})",
            "pip install 'fleet-queue[chat]'",
        )
    try:
        version = f" {importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return ok("connector library", f"{dist}{version} loads")


def check_secrets(config: ChatConfig, settings: Settings, library_ok: bool) -> Check:
    """Every secret the network needs is set; then the adapter is built from them, which
    is where a token of the wrong shape is refused (nothing is sent), and where the
    network's own rules on the roster's block are applied (Telegram's numeric ids): only a
    secret's problem is sent to ``fleet.env``, a roster's to the roster."""
    secrets_hint = SECRETS_HINT.format(doc=network_doc(config.kind))
    missing = [
        " or ".join(env_name(field) for field in group)
        for group in SECRETS.get(config.kind, ())
        if not any(getattr(settings, field) for field in group)
    ]
    if missing:
        return fail("connector secrets", f"{', '.join(missing)} not set", secrets_hint)
    found = [
        env_name(f) for group in SECRETS.get(config.kind, ()) for f in group if getattr(settings, f)
    ]
    if library_ok:
        from fleet_queue.connector.adapters import build_adapter

        try:
            build_adapter(config, settings)
        except ChatSecretError as exc:
            return fail("connector secrets", exc.message, secrets_hint)
        except FleetError as exc:  # the adapter refuses the roster's block, not a secret
            return fail(
                "connector secrets",
                f"{', '.join(found)} set, but the {config.kind} connector refuses the roster:"
                f" {exc.message}",
                f"fix the roster's connector: block ({network_doc(config.kind)})",
            )
    return ok("connector secrets", f"{', '.join(found)} set")


def network_doc(kind: str) -> str:
    """The page that sets up ``kind`` (Matrix's is the chat page itself)."""
    return "docs/chat.md" if kind == "matrix" else f"docs/chat-{kind}.md"


def startup_checks(settings: Settings, roster: Roster) -> list[Check]:
    """Can the connector start here: its block, its library, its secrets. Empty without a
    connector block; only the block's line when it is wrong (the rest would guess)."""
    try:
        config = chat_config(roster)
        if config is None:
            return []
        first = check_config(roster, config, settings)
    except FleetError as exc:
        return [fail("connector", exc.message, "fix the roster's connector: block (docs/chat.md)")]
    library = guarded("connector library", lambda: check_library(config))
    library_ok = library.level == "ok"
    secrets = guarded("connector secrets", lambda: check_secrets(config, settings, library_ok))
    return [first, library, secrets]


def check_running(settings: Settings, roster: Roster, unit_active: UnitActive) -> Check:
    """Under ``fleet up`` (its child ``connector``), else under systemd; where the answering
    agent runs on another host, the connector runs there, not here."""
    from fleet_queue.connector.config import local_answering_agent
    from fleet_queue.connector.run_lock import running_connector
    from fleet_queue.up_state import read_state, running_up

    name = "connector running"
    if local_answering_agent(roster, settings) is None:
        config = chat_config(roster)
        assert config is not None
        host = roster.agent(answering_agent(roster, config)).host_or(settings.host)
        return ok(name, f"runs on host {host}, beside its answering agent, not here")
    log = settings.home / "logs" / "connector.log"
    up = running_up(settings)
    if up is not None:
        rows = [
            r for r in (read_state(settings) or {}).get("children", []) if r["name"] == "connector"
        ]
        if not rows:
            return warn(
                name,
                f"fleet up (pid {up}) runs without it (started before the roster had a connector?)",
                "fleet down; fleet up",
            )
        row = rows[0]
        if row["state"] == "running":
            return ok(
                name, f"under fleet up (pid {up}): pid {row['pid']}, {row['restarts']} restarts"
            )
        return warn(
            name,
            f"{row['state']} under fleet up (pid {up}), {row['restarts']} restarts so far",
            f"see {log}",
        )
    if unit_active() is True:
        return ok(name, f"{UNIT} is active")
    by_hand = running_connector(settings)
    if by_hand is not None:
        return ok(name, f"`fleet connector run`, pid {by_hand} (not supervised: a crash ends it)")
    return warn(
        name,
        "not running: not under fleet up, systemd, nor by hand",
        f"fleet up (it starts it), or systemctl --user start {UNIT}",
    )


def backlog_problems(records: list[ChatRecord], now: float, reply_timeout: float) -> list[str]:
    """What waits too long or failed lately, oldest first: empty when all is well."""
    problems = []
    queued = [
        r for r in records if r.state == ChatState.QUEUED and now - r.created_at > QUEUED_LONG
    ]
    if queued:
        problems.append(
            f"{len(queued)} queued for over {_minutes(QUEUED_LONG)}"
            f" (oldest #{queued[0].id}, {_minutes(now - queued[0].created_at)})"
        )
    stuck = [
        r
        for r in records
        if r.state == ChatState.DELIVERED and now - (r.delivered_at or r.created_at) > reply_timeout
    ]
    if stuck:
        problems.append(f"{len(stuck)} delivered, no reply sent after {_minutes(reply_timeout)}")
    failed = [
        r for r in records if r.state == ChatState.FAILED and now - r.created_at < FAILED_RECENT
    ]
    if failed:
        newest = failed[-1]
        problems.append(f"{len(failed)} failed in the last day (#{newest.id}: {newest.reason})")
    return problems


def check_backlog(settings: Settings) -> Check:
    with open_store_as_is(settings) as store:
        now = store.now().timestamp()
        records = store.chat_list(states=(*OPEN_STATES, ChatState.FAILED))
    problems = backlog_problems(records, now, settings.chat_reply_timeout)
    if problems:
        return warn("chat backlog", "; ".join(problems), "fleet connector status")
    waiting = sum(r.state in OPEN_STATES for r in records)
    return ok("chat backlog", f"{waiting} open, none waiting long, none failed in the last day")


def _minutes(seconds: float) -> str:
    return f"{round(seconds / 60)} min"


def connector_checks(settings: Settings, store_ok: bool, unit_active: UnitActive) -> list[Check]:
    """The doctor's connector lines: none when the roster has no connector (or none loads)."""
    try:
        roster = load_roster(settings.effective_roster_path)
    except FleetError:
        return []  # the roster check says why
    checks = startup_checks(settings, roster)
    if not checks or checks[0].level != "ok":
        return checks
    checks.append(
        guarded("connector running", lambda: check_running(settings, roster, unit_active))
    )
    if store_ok:
        checks.append(guarded("chat backlog", lambda: check_backlog(settings)))
    return checks
