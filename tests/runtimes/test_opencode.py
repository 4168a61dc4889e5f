"""opencode (``opencode-ai``, pinned) in a real fleet, on the model double.

opencode speaks the Anthropic Messages API to the double; its plugin (written by ``fleet
start``) runs our hook program, so readiness (its first catalog update: the TUI takes keys
by then), the prompt taken and the turn's end are opencode's own word. The card is closed
by opencode's ``bash`` tool running ``fleet card done``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_queue.model_double import ModelDouble
from fleet_queue.settings import Settings
from tests.runtimes.hooked_tui import broker, card_scenario, fleet_for, panes_env

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(180)]
__all__ = ["broker", "fleet_for", "panes_env"]


def test_a_card_typed_into_opencode_is_taken_closed_by_its_bash_tool_and_reported_busy_then_ok(
    fleet_for: Settings, double: ModelDouble, panes_env: Path
) -> None:
    card_scenario("opencode", "occ", fleet_for, double, panes_env)
