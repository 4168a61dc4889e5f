"""Beat down: host workers keep their agents' status fresh, so nudged ticks still dispatch."""

from __future__ import annotations

import time

import pytest

from fleet_queue.cards import NewCard
from fleet_queue.supervisor import STALE_HOST_INTERVALS
from tests.e2e.conftest import TEAM
from tests.support.fleet import running_fleet, stub_roster
from tests.support.poll import wait_until
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_without_beat_status_stays_fresh_and_cards_still_flow(e2e_settings, broker) -> None:  # type: ignore[no-untyped-def]
    settings = e2e_settings.model_copy(update={"host_status_interval": 1.0})
    roster = stub_roster(TEAM, env={"FLEET_STUB_WORK": "0.1"})
    with running_fleet(settings, roster, with_beat=False) as fleet:
        assert "beat" not in [child.name for child in fleet.processes.children]
        started = fleet.store.now()
        stale_after = settings.host_status_interval * STALE_HOST_INTERVALS + 1.0
        time.sleep(stale_after + 1.0)  # long enough for rows nobody refreshes to go stale

        def refreshed() -> bool:
            rows = fleet.store.agent_statuses(host=settings.host)
            newest = min(row.updated_at for row in rows if row.updated_at)
            return len(rows) == len(TEAM) and (newest - started).total_seconds() > stale_after

        wait_until(refreshed, timeout=scaled(10), what="every agent row refreshed without beat")
        fleet.store.create(NewCard(id="nb1", title="no beat needed", target_agent="c1"))
        fleet.wait_status("nb1", "done", timeout=scaled(30))
        assert fleet.deliveries_of("nb1") == 1
        assert fleet.agent_of("nb1") == ["c1"]
