"""A card that takes longer than a lease stays with the agent working on it."""

from __future__ import annotations

import pytest

from fleet_queue.cards import NewCard
from tests.support.fleet import running_fleet, stub_roster
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_working_agent_keeps_a_card_longer_than_its_lease(e2e_settings, broker) -> None:  # type: ignore[no-untyped-def]
    lease = scaled(2.0)
    settings = e2e_settings.model_copy(update={"lease_ttl": lease, "reclaim_interval": 0.5})
    roster = stub_roster(
        [("lead", "orchestrator"), ("enh", "enhancer"), ("slow", "writer")],
        per_agent_env={"slow": {"FLEET_STUB_WORK": str(3 * lease)}},  # three leases long
    )
    with running_fleet(settings, roster) as fleet:
        fleet.store.create(NewCard(id="long1", title="a long piece of work", target_agent="slow"))
        fleet.wait_status("long1", "done", timeout=scaled(60))
        card = fleet.store.get("long1")
        assert card.attempts == 1
        kinds = [e.kind for e in fleet.store.events(card_id="long1")]
        assert "reclaimed" not in kinds
        assert kinds.count("renewed") >= 2
        assert fleet.deliveries_of("long1") == 1
        assert fleet.agent_of("long1") == ["slow"]
