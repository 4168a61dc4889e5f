"""Codex 0.171 is ready for input when its app-server started the TUI's thread, not when its
composer is drawn: the real CLI on the model double, in tmux, started by ``fleet start``."""

from __future__ import annotations

import time

from fleet_queue.model_double import ModelDouble, Reply
from fleet_queue.roster import Roster
from fleet_queue.settings import Settings
from tests.runtimes.test_adapters import (  # the fixtures and helpers of the adapter tests
    START_TIMEOUT,
    TURN_TIMEOUT,
    card_text,
    codex_roster,
    double,
    paste_and_enter,
    rt_settings,
    start,
    started,
    status_of,
)
from tests.support.poll import wait_until
from workers import evidence
from workers.heartbeat import utcnow
from workers.runtimes import launch_plan
from workers.tmux import TmuxServer, pane_target

__all__ = ["double", "rt_settings", "started"]  # fixtures used by name


def test_codex_is_starting_until_its_thread_started_then_the_first_card_is_taken(
    rt_settings: Settings, double: ModelDouble, started: list[tuple[Settings, Roster]]
) -> None:
    roster = codex_roster(rt_settings, double)
    start(started, rt_settings, roster)
    server = TmuxServer.for_fleet(rt_settings, None)
    composer_while_starting = False
    deadline = time.monotonic() + START_TIMEOUT
    while status_of(rt_settings, "cx")[0] != "ok":
        assert time.monotonic() < deadline, "Codex never said its thread started"
        screen = "\n".join(server.run("capture-pane", "-p", "-t", pane_target("cx")))
        if "Ask Codex" in screen and status_of(rt_settings, "cx")[0] == "busy":
            composer_while_starting = True
        time.sleep(0.05)
    # The composer is drawn seconds before the app-server has a thread for it: the screen
    # is no evidence of readiness, the app-server's own log is.
    assert composer_while_starting
    home = rt_settings.home / "agents" / "cx" / "codex"
    assert evidence.codex_thread_started(home, 0.0)
    # The first card, typed once as soon as the status says ok, is taken: no retry.
    plan = launch_plan(rt_settings, roster, roster.agent("cx"))
    text = card_text("R-1")
    double.responder = lambda r: Reply(text="done")
    since = utcnow()
    paste_and_enter(rt_settings, "cx", text)
    seen = double.wait_for(lambda r: "R-1" in r.last_user_text(), TURN_TIMEOUT)
    assert text in seen.last_user_text()
    wait_until(
        lambda: evidence.prompt_seen(plan, evidence.sha256(text), since),
        10,
        what="the card in the rollout",
    )
