"""A budget hit stops new cards to that agent in a running fleet (issue 17).

A real Celery host worker and beat, Redis and tmux; coder ``a0`` is the real Claude Code
TUI on the model double (so its spend is what Claude Code itself wrote in its transcript,
read by the host worker's status collection), ``a1`` a stub of the same class. ``a0``'s
daily budget is less than one card's turns: once the worker has read them, the tick gives
every card for the class to ``a1``, a card aimed at ``a0`` waits, ``fleet ps`` says
``over budget`` and one ``over_budget`` event is written; a raised budget lets ``a0``
take its card. Waits derive from the measured TUI start-up (``startup``) and ``scaled``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet_queue.cards import EventKind, NewCard
from fleet_queue.model_double import ModelDouble
from fleet_queue.private import ensure_private_dir
from fleet_queue.settings import Settings
from tests.runtimes.conftest import double  # noqa: F401  (fixture)
from tests.runtimes.test_real_e2e import (  # noqa: F401  (fixtures)
    broker,
    coder,
    fleet_settings_for,
    panes_env,
    ps_row,
    real_fleet,
    startup,
)
from tests.support.poll import wait_until
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(400)]

MODEL = "claude-sonnet-4-5"
"""A priced model: a reply of the double's default usage (12 in, 4 out) costs $0.000096."""
SMALL = "agents: {a0: {day: 0.0001}}\n"
"""Less than one card of ``a0``'s (two replies), more than its first one."""
RAISED = "agents: {a0: {day: 100}}\n"


def write_budgets(settings: Settings, text: str) -> None:
    ensure_private_dir(settings.home)
    path = settings.home / "budgets.yaml"
    path.write_text(text)
    path.chmod(0o600)


def test_an_agent_over_its_budget_gets_no_new_card_until_the_budget_is_raised(
    fleet_settings_for: Callable[..., Settings],  # noqa: F811
    double: ModelDouble,  # noqa: F811
    panes_env: Path,  # noqa: F811
    startup: float,  # noqa: F811
) -> None:
    settings = fleet_settings_for()
    write_budgets(settings, SMALL)
    a0 = coder("a0", "claude", double, panes_env, model_hint=MODEL)
    a1 = {
        "name": "a1",
        "runtime": "stub",
        "class": "implementer",
        "env": {"FLEET_STUB_WORK": "0.2"},
    }
    turn = scaled(60) + 2 * settings.lease_ttl
    with real_fleet(settings, double, panes_env, a0, a1) as fleet:
        store = fleet.store
        store.create(NewCard(id="k-first", title="a0 spends", target_agent="a0"))
        fleet.wait_status("k-first", "done", timeout=turn)

        # the worker's status collection reads a0's transcript: a0 is over its budget
        wait_until(
            lambda: (ps_row(fleet, "a0").get("budget") or "").startswith("over budget"),
            timeout=scaled(30),
            what="fleet ps to show a0 over budget",
        )
        row = ps_row(fleet, "a0")
        assert row["spend_today"] > 0.0001 and row["cost_known"], row
        ledger = store.spend_rows("2000-01-01")
        assert any(r.agent == "a0" and r.card == "k-first" and r.model == MODEL for r in ledger)

        store.create(NewCard(id="k-held", title="for a0 only", target_agent="a0"))
        for n in range(3):
            store.create(NewCard(id=f"k-class-{n}", title="any coder", target_class="implementer"))
        for n in range(3):
            fleet.wait_status(f"k-class-{n}", "done", timeout=scaled(30))
            assert store.get(f"k-class-{n}").lease_owner == "a1"
        # ticks have passed the card aimed at a0 by; it waits while a0 is over budget
        ticks = time.monotonic() + scaled(3 * settings.tick_interval)
        while time.monotonic() < ticks:
            assert fleet.status("k-held") == "ready"
            time.sleep(0.2)
        over = store.events(kind=EventKind.OVER_BUDGET, limit=None)
        assert [(e.agent, (e.detail or "").split(":")[0]) for e in over] == [("a0", "agent a0 day")]

        write_budgets(settings, RAISED)
        fleet.wait_status("k-held", "done", timeout=turn)
        assert store.get("k-held").lease_owner == "a0"
        assert ps_row(fleet, "a0").get("budget") is None
        assert len(store.events(kind=EventKind.OVER_BUDGET, limit=None)) == 1
