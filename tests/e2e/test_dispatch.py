"""Cards flow end to end through real Celery processes into stub agents in real tmux."""

from __future__ import annotations

import os
import time

import pytest
from typer.testing import CliRunner

from fleet_queue.cards import NewCard
from fleet_queue.celery_app import make_celery
from fleet_queue.cli import app as cli
from fleet_queue.queues import DELIVER_TASK, host_queue
from tests.support.fleet import Fleet, running_fleet, stub_roster
from tests.support.poll import wait_until
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def all_done(fleet: Fleet, ids: list[str], timeout: float = 60.0) -> None:
    """``timeout``: seconds on a quiet machine (scaled by the measured slowness)."""
    wait_until(
        lambda: all(fleet.status(i) == "done" for i in ids),
        timeout=scaled(timeout),
        what=f"all of {ids} done: {[(i, fleet.status(i)) for i in ids]}",
    )


def test_dependencies_complete_in_order(team: Fleet) -> None:
    cards = [
        NewCard(id="a", title="first"),
        NewCard(id="b", title="second", depends_on=("a",)),
        NewCard(id="c", title="third", depends_on=("b",)),
        NewCard(id="d", title="last", depends_on=("b", "c")),
    ]
    team.store.create_many(cards)
    all_done(team, ["a", "b", "c", "d"])
    got = {card.id: team.store.get(card.id) for card in cards}
    for before, after in (("a", "b"), ("b", "c"), ("c", "d")):
        done_at = got[before].completed_at
        claimed_at = got[after].claimed_at
        assert done_at is not None and claimed_at is not None
        assert claimed_at >= done_at, f"{after} was claimed before {before} was done"
    for card in cards:
        assert team.deliveries_of(card.id) == 1


def test_targeted_card_reaches_only_that_agent(team: Fleet) -> None:
    ids = [f"t{i}" for i in range(3)]
    for card_id in ids:
        team.store.create(NewCard(id=card_id, title="for c1 only", target_agent="c1"))
    all_done(team, ids)
    for card_id in ids:
        assert team.agent_of(card_id) == ["c1"]


def test_role_matching(team: Fleet) -> None:
    team.store.create(NewCard(id="r1", title="review me", target_class="reviewer"))
    team.store.create(NewCard(id="i1", title="implement me", target_class="implementer"))
    all_done(team, ["r1", "i1"])
    assert team.agent_of("r1") == ["rev"]
    assert team.agent_of("i1")[0] in {"c0", "c1"}


def test_pause_stops_dispatch_and_resume_restarts(team: Fleet) -> None:
    runner = CliRunner()
    env = {
        "FLEET_HOME": str(team.settings.home),
        "FLEET_BROKER_URL": str(team.settings.broker_url),
        "FLEET_HOST": team.settings.host,
        "FLEET_TMUX_SOCKET": team.settings.tmux_socket,
    }
    result = runner.invoke(cli, ["pause", "--reason", "maintenance"], env=env)
    assert result.exit_code == 0, result.output
    team.store.create(NewCard(id="p1", title="wait for resume"))
    time.sleep(scaled(team.settings.tick_interval * 3))  # three beat ticks: nothing may move
    assert team.status("p1") == "ready"
    assert team.deliveries_of("p1") == 0
    result = runner.invoke(cli, ["resume"], env=env)
    assert result.exit_code == 0, result.output
    all_done(team, ["p1"])
    assert team.deliveries_of("p1") == 1


def test_host_pause_file_parks_its_agents_without_churning_cards(team: Fleet) -> None:
    from fleet_queue.pause import paused_file

    marker = paused_file(team.settings)
    marker.write_text("by=test reason=host only\n")
    wait_until(
        lambda: {s.readiness for s in team.store.agent_statuses()} == {"paused"},
        timeout=scaled(10),
        what="every agent of the paused host reported paused",
    )
    team.store.create(NewCard(id="hp1", title="wait for this host"))
    time.sleep(scaled(team.settings.tick_interval * 3))
    assert team.status("hp1") == "ready"
    kinds = [e.kind for e in team.store.events(card_id="hp1")]
    assert "claimed" not in kinds and "released" not in kinds, kinds
    marker.unlink()
    all_done(team, ["hp1"])
    assert team.deliveries_of("hp1") == 1


def test_same_delivery_message_twice_types_once(team: Fleet) -> None:
    # Claim it ourselves, paused so no tick races us: we hold the token the message carries.
    team.store.pause(reason="test claims by hand", by="test")
    team.store.create(NewCard(id="dup", title="typed once", target_agent="c0"))
    claim = team.store.claim("c0", "implementer", "testhost", lease_ttl=30, card_id="dup")
    assert claim is not None
    token = claim.token
    team.store.resume(by="test")
    app = make_celery(team.settings)
    for _ in range(2):
        app.send_task(
            DELIVER_TASK,
            args=("dup", token, "c0"),
            queue=host_queue(team.settings.tenant, "testhost"),
        )
    all_done(team, ["dup"])
    wait_until(  # the second message consumed and dropped (a fixed sleep could end first)
        lambda: "dropped" in [e.kind for e in team.store.events(card_id="dup")],
        timeout=scaled(10),
        what="the second delivery message dropped",
    )
    assert team.deliveries_of("dup") == 1


def test_kill9_worker_during_delivery_delivers_exactly_once(e2e_settings, broker) -> None:  # type: ignore[no-untyped-def]
    settings = e2e_settings.model_copy(update={"lease_ttl": scaled(4.0)})
    roster = stub_roster(
        [("lead", "orchestrator"), ("enh", "enhancer"), ("c0", "implementer")],
        env={"FLEET_STUB_WORK": "0.2"},
    )
    with running_fleet(settings, roster) as fleet:
        fleet.store.create(NewCard(id="k1", title="survive a crash", target_agent="c0"))
        wait_until(
            lambda: fleet.status("k1") != "ready",
            timeout=scaled(20),
            interval=0.002,
            what="k1 claimed",
        )
        fleet.kill_worker()  # kill -9 while the delivery is in flight
        claimed = fleet.store.get("k1")
        fleet.restart_worker()  # what `fleet up` does for a dead child
        fleet.wait_status("k1", "done", timeout=scaled(60))
        assert fleet.deliveries_of("k1") == 1
        final = fleet.store.get("k1")
        assert final.token >= claimed.token


def test_restart_redis_mid_run_loses_no_card(e2e_settings, broker) -> None:  # type: ignore[no-untyped-def]
    settings = e2e_settings.model_copy(update={"lease_ttl": scaled(6.0)})
    roster = stub_roster(
        [
            ("lead", "orchestrator"),
            ("enh", "enhancer"),
            ("c0", "implementer"),
            ("c1", "implementer"),
        ],
        env={"FLEET_STUB_WORK": "0.1"},
    )
    with running_fleet(settings, roster) as fleet:
        ids = [f"r{i}" for i in range(12)]
        fleet.store.create_many(
            [NewCard(id=i, title="keep me", target_class="implementer") for i in ids]
        )
        wait_until(
            lambda: sum(fleet.status(i) == "done" for i in ids) >= 2,
            timeout=scaled(30),
            what="a couple of cards done",
        )
        broker.stop()
        time.sleep(2.0)
        broker.start()
        all_done(fleet, ids, timeout=120)
        for card_id in ids:
            assert fleet.deliveries_of(card_id) == 1, card_id


def test_hanging_agent_card_reclaimed_then_failed(e2e_settings, broker) -> None:  # type: ignore[no-untyped-def]
    # a hung agent still heartbeats busy, so its lease is renewed until card_timeout
    settings = e2e_settings.model_copy(
        update={"lease_ttl": scaled(2.0), "max_attempts": 2, "card_timeout": scaled(1.0)}
    )
    roster = stub_roster(
        [("lead", "orchestrator"), ("enh", "enhancer"), ("stuck", "hanger")],
        per_agent_env={"stuck": {"FLEET_STUB_MODE": "hang"}},
    )
    with running_fleet(settings, roster) as fleet:
        fleet.store.create(NewCard(id="h1", title="never finished", target_class="hanger"))
        fleet.wait_status("h1", "failed", timeout=scaled(60))
        card = fleet.store.get("h1")
        assert card.reason, "a failed card carries its reason"
        assert card.attempts == 2
        kinds = [e.kind for e in fleet.store.events(card_id="h1")]
        assert "reclaimed" in kinds


def test_card_whose_delivery_always_fails_is_blocked(e2e_settings, broker) -> None:  # type: ignore[no-untyped-def]
    import sys

    from tests.host.conftest import DRAFT_PROGRAM

    roster = stub_roster([("lead", "orchestrator"), ("enh", "enhancer")])
    roster["agents"].append(  # a pane that never submits: every delivery is "not accepted"
        {
            "name": "d0",
            "runtime": "draft",
            "class": "drafter",
            "command": f"{sys.executable} {DRAFT_PROGRAM}",
        }
    )
    with running_fleet(e2e_settings, roster) as fleet:
        fleet.store.create(NewCard(id="nd1", title="never typed", target_agent="d0"))
        fleet.wait_status("nd1", "blocked", timeout=scaled(90))
        card = fleet.store.get("nd1")
        assert card.reason is not None and "delivery failed 3 times" in card.reason, card.reason
        assert "not accepted" in card.reason and card.attempts == 0
        time.sleep(scaled(fleet.settings.tick_interval * 3))  # three ticks: not claimed again
        events = fleet.store.events(card_id="nd1")
        kinds = [e.kind for e in events]
        assert kinds.count("claimed") == 3 and kinds[-1] == "blocked", kinds
        released = [e.detail or "" for e in events if e.kind == "released"]
        assert len(released) == 2 and all(d.startswith("delivery failed") for d in released)
        assert fleet.status("nd1") == "blocked"


def test_demo_runs_to_completion_on_the_embedded_broker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleet_queue",
            "demo",
            "--json",
            "--work",
            "0.1",
            "--timeout",
            str(int(scaled(120))),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=scaled(200),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert report["cards"] == {"done": 8}
    assert report["deliveries"] == 8
