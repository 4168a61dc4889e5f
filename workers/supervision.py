"""The host worker keeps this host's roster floor alive, and briefs each new pane.

Run from every host-status round (``workers.tasks.collect_status``), after the probe:

- **Restart.** A local roster agent of this tenant whose pane is dead (or whose session is
  gone) is started again, unless an operator stopped it (``fleet stop``). Restarts back off:
  the n-th restart within ``FLEET_RESTART_WINDOW`` waits 1 s, 2 s, 4 s ... at most 60 s
  after the one before it. A crash loop does not restart forever: when an agent died again
  after ``FLEET_RESTART_MAX`` restarts inside the window, it is ``broken`` (no restart, no
  card) until ``fleet start NAME``. Each restart and each break is an event.
- **Release.** The card a dead pane held (claimed or typed) goes back to ``ready`` at once,
  with the reason, before the restart: the new pane never saw it, and waiting for its lease
  to run out would leave it idle for a whole lease.
- **Brief.** A pane started by anyone (``fleet start``/``up``, or a restart here) is owed its
  brief (``FLEET_BRIEF_AT_START``); it reads ``briefing``, so the tick gives it no card, until
  the brief has been typed and accepted here. A brief that cannot be typed
  ``BRIEF_ATTEMPTS`` times is given up with an event, so the agent is not kept from work.

The marks that carry this between rounds are files (``workers.agent_marks``); the lock
below keeps two overlapping status rounds of one worker from restarting or briefing twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleet_queue.cards import EventKind
from fleet_queue.errors import AgentBusyError, FleetError
from fleet_queue.roster import Roster
from fleet_queue.settings import Settings
from workers.agent_marks import load_marks, save_marks
from workers.probe import AgentProbe
from workers.sessions import start_agents

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
BRIEF_ATTEMPTS = 3

Record = Callable[[str, EventKind, str], None]
"""Write an agent event: (agent, kind, detail)."""

Type = Callable[[str, str], None]
"""Type a text into an agent's pane and verify it (raises AgentBusyError, DeliveryError)."""

Release = Callable[[str, str], list[str]]
"""Give back the cards an agent holds on this host, with a reason: (agent, reason) -> ids."""

_round = threading.Lock()


@dataclass(frozen=True)
class Action:
    agent: str
    action: str
    """restarted | broken | restart failed | released | briefed | brief given up"""
    detail: str


def backoff(restarts: int) -> float:
    """Seconds before the next restart after ``restarts`` restarts in the window."""
    return float(min(BACKOFF_FIRST * 2 ** max(restarts - 1, 0), BACKOFF_MAX))


def supervise(
    settings: Settings,
    roster: Roster,
    probes: Sequence[AgentProbe],
    record: Record,
    type_text: Type,
    release: Release | None = None,
) -> list[Action]:
    """One round: restart the dead, brief the new. Skipped when a round is still running."""
    if not _round.acquire(blocking=False):
        return []
    try:
        actions = restart_dead(settings, roster, probes, record, release=release)
        if settings.brief_at_start:
            actions += send_briefs(settings, roster, probes, record, type_text)
        return actions
    finally:
        _round.release()


def restart_dead(
    settings: Settings,
    roster: Roster,
    probes: Sequence[AgentProbe],
    record: Record,
    now: float | None = None,
    release: Release | None = None,
) -> list[Action]:
    local = {a.name for a in roster.agents_on(settings.host, settings.tenant)}
    actions = []
    for probe in probes:
        if probe.agent in local and probe.readiness == "dead":
            if release is not None:
                reason = f"agent {probe.agent}'s pane died on host {settings.host}"
                for card_id in release(probe.agent, reason):
                    actions.append(Action(probe.agent, "released", f"{card_id}: {reason}"))
            action = _restart_one(settings, roster, probe.agent, record, now or time.time())
            if action is not None:
                actions.append(action)
    return actions


def _restart_one(
    settings: Settings, roster: Roster, agent: str, record: Record, now: float
) -> Action | None:
    marks = load_marks(settings.run_dir, agent)
    if marks.stopped or marks.broken or now < marks.next_restart:
        return None
    recent = [t for t in marks.restarts if now - t < settings.restart_window]
    if len(recent) >= settings.restart_max:
        marks.broken = (
            f"died {len(recent) + 1} times in {settings.restart_window:.0f}s"
            f" (FLEET_RESTART_MAX {settings.restart_max}); fleet start {agent} to retry"
        )
        marks.restarts = recent
        save_marks(settings.run_dir, agent, marks)
        record(agent, EventKind.BROKEN, marks.broken)
        log.warning("agent %s is broken: %s", agent, marks.broken)
        return Action(agent, "broken", marks.broken)
    marks.restarts = [*recent, now]
    marks.next_restart = now + backoff(len(marks.restarts))
    save_marks(settings.run_dir, agent, marks)  # before the start: a failed start counts too
    try:
        results = start_agents(settings, roster, [agent], supervised=True)
    except FleetError as exc:
        detail = f"restart {len(marks.restarts)} failed: {exc.message}"
        record(agent, EventKind.RESTARTED, detail)
        return Action(agent, "restart failed", detail)
    result = results[0] if results else None
    if result is None or result.action in ("running", "left"):
        return None  # someone else started or stopped it meanwhile: not ours to count
    detail = (
        f"pane was dead; restart {len(marks.restarts)} of {settings.restart_max}"
        f" in {settings.restart_window:.0f}s, pid {result.pid};"
        f" next no sooner than {backoff(len(marks.restarts)):.0f}s"
    )
    record(agent, EventKind.RESTARTED, detail)
    log.info("restarted agent %s: %s", agent, detail)
    return Action(agent, "restarted", detail)


def send_briefs(
    settings: Settings,
    roster: Roster,
    probes: Sequence[AgentProbe],
    record: Record,
    type_text: Type,
) -> list[Action]:
    """Type each ``briefing`` agent's brief; it is available from the next round on."""
    from fleet_queue.brief import build_brief

    actions = []
    for probe in probes:
        if probe.readiness != "briefing" or probe.tenant_id != settings.tenant:
            continue
        marks = load_marks(settings.run_dir, probe.agent)
        if not marks.brief_pending:
            continue
        try:
            type_text(probe.agent, build_brief(settings, roster, probe.agent).text)
        except AgentBusyError:
            continue  # a pane still drawing: the next round tries again
        except FleetError as exc:
            marks.brief_failures += 1
            if marks.brief_failures < BRIEF_ATTEMPTS:
                save_marks(settings.run_dir, probe.agent, marks)
                continue
            marks.brief_pending = False
            save_marks(settings.run_dir, probe.agent, marks)
            detail = f"brief given up after {marks.brief_failures} tries: {exc.message}"
            record(probe.agent, EventKind.BRIEFED, detail)
            actions.append(Action(probe.agent, "brief given up", detail))
            continue
        marks.brief_pending = False
        save_marks(settings.run_dir, probe.agent, marks)
        record(probe.agent, EventKind.BRIEFED, "brief typed and accepted")
        actions.append(Action(probe.agent, "briefed", ""))
    return actions


def brief_owed(settings: Settings, agent: str) -> bool:
    """A delivery must not reach a pane before its brief (the delivery waits, as if busy)."""
    return settings.brief_at_start and load_marks(settings.run_dir, agent).brief_pending
