"""Per-agent pause and resume from the console's agents panel, in headless Chromium: the
click goes through the same store call as ``fleet agent pause|resume`` (the tick claims
nothing for the paused agent) and leaves operator events naming the logged-in user. The
take-control mode is absent unless the console was started with it."""

from __future__ import annotations

from typing import Any

from fleet_queue.cards import EventKind, NewCard
from tests.console.conftest import ConsoleServer
from tests.console.test_console_actions import act, csrf_of


def test_pause_and_resume_one_agent_from_the_panel(
    page: Any, console: ConsoleServer, slowness: float
) -> None:
    pipe = console.pipeline
    pipe.store.create(NewCard(id="A1", title="for a1 once resumed", target_agent="a1"))
    page.goto(console.url + "/")
    page.wait_for_selector("#pause-a1", timeout=10_000 * slowness)
    page.click("#pause-a1")
    page.wait_for_selector("#resume-a1", timeout=10_000 * slowness)  # live panel, no reload
    assert "paused" in page.locator("#toast").inner_text()
    assert pipe.store.paused_agents() == {"a1": "by ops: paused from the console"}
    pipe.tick()
    assert pipe.take_deliveries() == [], "a paused agent is given no card"
    assert pipe.store.get("A1").status.value == "ready"

    page.click("#resume-a1")
    page.wait_for_selector("#pause-a1", timeout=10_000 * slowness)
    assert pipe.store.paused_agents() == {}
    assert pipe.tick_for_one().args[0] == "A1"
    held = [
        (e.kind, e.agent, e.detail)
        for e in pipe.store.events(limit=None)
        if e.kind in (EventKind.AGENT_PAUSED, EventKind.AGENT_RESUMED, EventKind.OPERATOR)
    ]
    assert held == [
        (EventKind.AGENT_PAUSED, "a1", "by ops: paused from the console"),
        (EventKind.OPERATOR, "a1", "by ops: paused agent a1: paused from the console"),
        (EventKind.AGENT_RESUMED, "a1", "by ops"),
        (EventKind.OPERATOR, "a1", "by ops: resumed agent a1"),
    ]


def test_pause_refuses_an_agent_not_in_the_roster(console: ConsoleServer) -> None:
    token = csrf_of(console)
    assert act(console, "/agents/ghost/pause", token) == (
        404,
        "unknown agent 'ghost' (not in the roster)",
    )
    assert console.pipeline.store.paused_agents() == {}
    assert console.pipeline.store.events(kind="operator") == []


def test_take_control_is_off_by_default(page: Any, console: ConsoleServer, slowness: float) -> None:
    page.goto(console.url + "/agents/a1/terminal")
    page.wait_for_selector("#terminal", timeout=10_000 * slowness)
    assert page.locator("#take-control").count() == 0
    token = csrf_of(console)
    assert act(console, "/agents/a1/control/take", token) == (
        409,
        "take control is off on this console (FLEET_CONSOLE_TAKE_CONTROL)",
    )
    assert console.pipeline.store.events(kind="operator") == []
