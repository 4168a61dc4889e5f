"""The tick a CLI or script sends without Celery is a real task message: a real worker
runs it. Beat is off here, so nothing else could have claimed the card."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_queue.cards import CardStatus, NewCard
from fleet_queue.composition import open_card_store
from fleet_queue.nudge import send_tick
from fleet_queue.settings import Settings
from tests.support.fleet import running_fleet, stub_roster
from tests.support.poll import wait_until
from tests.support.servers import RedisServer
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

TEAM = [("lead", "orchestrator"), ("enh", "enhancer"), ("c0", "implementer")]


def test_ticks_sent_without_celery_are_run_by_a_real_worker(
    e2e_settings: Settings, broker: RedisServer, tmp_path: Path
) -> None:
    settings = e2e_settings.model_copy(update={"tick_interval": 3600.0})
    with running_fleet(settings, stub_roster(TEAM), with_beat=False) as fleet:
        # the store's nudge hook: SET NX debounce, then the message pushed with redis-py
        with open_card_store(settings) as store:
            store.create(NewCard(id="n1", title="nudged", target_agent="c0"))
        wait_until(
            lambda: fleet.store.get("n1").status is CardStatus.DONE, scaled(60), what="n1 done"
        )
        # `fleet tick`: no debounce; the card was created with no hook, so only it can tick
        with open_card_store(settings, on_change=lambda kind: None) as quiet:
            quiet.create(NewCard(id="t1", title="ticked", target_agent="c0"))
            assert quiet.get("t1").status is CardStatus.READY
            send_tick(settings)
            wait_until(
                lambda: quiet.get("t1").status is CardStatus.DONE, scaled(60), what="t1 done"
            )
    assert fleet.deliveries_of("n1") == 1
    assert fleet.deliveries_of("t1") == 1
