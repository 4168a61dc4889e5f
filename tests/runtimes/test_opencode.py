"""opencode (``opencode-ai``, pinned) in a real fleet, on the model double.

opencode speaks the Anthropic Messages API to the double; its plugin (written by ``fleet
start``) runs our hook program, so readiness (its first catalog update: the TUI takes keys
by then), the prompt taken and the turn's end are opencode's own word. The card is closed
by opencode's ``bash`` tool running ``fleet card done``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet_queue.cards import NewCard
from fleet_queue.model_double import ModelDouble
from fleet_queue.settings import Settings
from tests.runtimes.hooked_tui import (
    HeartbeatSampler,
    broker,
    card_scenario,
    fleet_for,
    kinds,
    panes_env,
    roster,
)
from tests.runtimes.test_real_e2e import operator
from tests.support.fleet import running_fleet
from tests.support.poll import wait_until
from tests.support.timing import scaled
from workers.pane_stream import TmuxTerminal

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(180)]
__all__ = ["broker", "fleet_for", "panes_env"]


def test_a_card_typed_into_opencode_is_taken_closed_by_its_bash_tool_and_reported_busy_then_ok(
    fleet_for: Settings, double: ModelDouble, panes_env: Path
) -> None:
    card_scenario("opencode", "occ", fleet_for, double, panes_env)


def test_an_attended_opencode_asking_permission_is_waiting_until_answered_then_ok(
    fleet_for: Settings, double: ModelDouble, panes_env: Path
) -> None:
    """Attended, the operator's opencode.json asks before bash: the plugin's
    ``permission.asked`` says ``waiting`` with the card (nothing can be typed into the
    dialog), Enter through the console's take-control path approves, ``permission.replied``
    says ``busy``, the card is closed and the agent is ``ok``."""
    home = fleet_for.home / "agents" / "occ" / "opencode"
    home.mkdir(mode=0o700, parents=True)
    (home / "opencode.json").write_text(json.dumps({"permission": {"bash": "ask"}}))
    data = roster("opencode", "occ", double, panes_env, unattended=False)
    with running_fleet(fleet_for, data) as fleet, HeartbeatSampler(fleet_for, "occ") as sampler:
        fleet.store.create(NewCard(id="pm-occ", title="ask first", target_agent="occ"))
        wait_until(
            lambda: ("waiting", "pm-occ") in sampler.seen,
            timeout=scaled(60),
            what=f"occ waiting: {sampler.seen}",
        )
        sent = operator(fleet, "agent", "send", "occ", "--force", "--message", "1")
        assert sent.returncode != 0 and "waiting for a person" in sent.stderr, sent.stderr
        terminal = TmuxTerminal(fleet_for, fleet.roster)
        try:
            terminal.type_raw("occ", "\r")  # "Allow once" is selected
        finally:
            terminal.close()
        fleet.wait_status("pm-occ", "done", timeout=scaled(60))
        wait_until(lambda: sampler.busy_then_ok("pm-occ"), timeout=scaled(30), what="occ ok")
        seen = sampler.seen
        waited = seen.index(("waiting", "pm-occ"))
        assert ("busy", "pm-occ") in seen[waited:], seen  # answered: busy again, then ok
        assert kinds(fleet, "pm-occ").count("delivered") == 1
