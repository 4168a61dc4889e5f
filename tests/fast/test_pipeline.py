"""Dispatch rules through the in-process pipeline: the real tick, the real delivery body,
real panes and Redis, no Celery process. Each rule in seconds, each message run by hand."""

from __future__ import annotations

import sys
import time

import pytest

from fleet_queue.cards import CardStatus, NewCard
from fleet_queue.pause import pause_fleet, paused_file, resume_fleet
from fleet_queue.queues import DELIVER_TASK
from tests.fast.conftest import PipelineFactory, agent
from tests.support.pipeline import Pipeline, SentTask
from tests.support.poll import wait_until


def kinds_of(pipe: Pipeline, card_id: str) -> list[str]:
    return [str(event.kind) for event in pipe.store.events(card_id=card_id)]


def wait_done(pipe: Pipeline, card_id: str, slowness: float) -> None:
    wait_until(
        lambda: pipe.store.get(card_id).status is CardStatus.DONE,
        timeout=20 * slowness,
        what=f"{card_id} closed by its stub agent",
    )


def test_tick_claims_and_the_delivery_reaches_the_pane(pipeline: Pipeline, slowness: float) -> None:
    pipeline.store.create(NewCard(id="c1", title="hello", target_agent="a2"))
    message = pipeline.tick_for_one()
    card_id, token, agent_name = message.args
    assert (card_id, agent_name) == ("c1", "a2")
    assert message.options["queue"].endswith("testhost")
    assert pipeline.deliver(message)["delivered"] == "c1"
    wait_done(pipeline, "c1", slowness)
    assert pipeline.typed("c1", token) == 1
    assert not any("fleet card done c1 " in text for text in pipeline.messages("a1"))


def test_fence_drops_a_stale_token(pipeline: Pipeline, slowness: float) -> None:
    pipeline.store.create(NewCard(id="f1", title="fenced", target_agent="a1"))
    stale = pipeline.tick_for_one()
    pipeline.store.release("f1", stale.args[1], "test: the lease moved on")
    fresh = pipeline.tick_for_one()
    assert fresh.args[1] > stale.args[1]

    assert "dropped" in pipeline.deliver(stale)
    assert pipeline.typed("f1") == 0, "a stale token typed nothing"
    assert "dropped" in kinds_of(pipeline, "f1")

    assert pipeline.deliver(fresh)["delivered"] == "f1"
    wait_done(pipeline, "f1", slowness)
    assert pipeline.typed("f1") == 1 and pipeline.typed("f1", fresh.args[1]) == 1


def test_paused_fleet_claims_nothing(pipeline: Pipeline, slowness: float) -> None:
    pause_fleet(pipeline.store, pipeline.settings, "maintenance", "test")
    pipeline.store.create(NewCard(id="p1", title="wait"))
    assert pipeline.tick()["paused"] is True
    assert pipeline.take_deliveries() == []
    assert pipeline.store.get("p1").status is CardStatus.READY
    resume_fleet(pipeline.store, pipeline.settings, "test")
    assert pipeline.deliver(pipeline.tick_for_one())["delivered"] == "p1"
    wait_done(pipeline, "p1", slowness)


@pytest.mark.parametrize("where", ["fleet", "host"])
def test_delivery_refused_when_paused_after_the_claim(
    pipeline: Pipeline, slowness: float, where: str
) -> None:
    pipeline.store.create(NewCard(id="p2", title="paused in flight", target_agent="a1"))
    message = pipeline.tick_for_one()
    if where == "fleet":
        pipeline.store.pause("between claim and delivery", "test")
    else:
        paused_file(pipeline.settings).write_text("by=test reason=host only\n")
    result = pipeline.deliver(message)
    assert "paused" in result["released"]
    card = pipeline.store.get("p2")
    assert card.status is CardStatus.READY and card.attempts == 0, card
    assert pipeline.typed("p2") == 0
    resume_fleet(pipeline.store, pipeline.settings, "test")
    assert pipeline.deliver(pipeline.tick_for_one())["delivered"] == "p2"
    wait_done(pipeline, "p2", slowness)
    assert pipeline.typed("p2") == 1


def test_same_message_twice_types_once(pipeline: Pipeline, slowness: float) -> None:
    pipeline.store.create(NewCard(id="d1", title="typed once", target_agent="a1"))
    message = pipeline.tick_for_one()
    assert pipeline.deliver(message)["delivered"] == "d1"
    assert "dropped" in pipeline.deliver(message)  # Celery redelivered it
    wait_done(pipeline, "d1", slowness)
    assert "dropped" in pipeline.deliver(message)  # and again, after the card is closed
    assert pipeline.typed("d1") == 1


def test_redelivery_after_a_crash_mid_typing_types_nothing(pipeline: Pipeline) -> None:
    """A worker killed between typing and recording it: the store's fence still lets the
    message through, the typed-once key in Redis does not."""
    from workers.tasks import first_typing

    pipeline.store.create(NewCard(id="d2", title="crash", target_agent="a1"))
    message = pipeline.tick_for_one()
    card_id, token, _ = message.args
    assert first_typing(pipeline.context, card_id, token)  # what the dead worker did
    assert pipeline.deliver(message) == {"dropped": "already typed"}
    assert pipeline.typed("d2") == 0
    assert pipeline.store.get("d2").delivered_at is None


def test_busy_pane_keeps_the_claim_and_retries_until_free(
    make_pipeline: PipelineFactory, slowness: float
) -> None:
    # busy long enough to be seen busy twice, well within the retry budget (half the
    # lease, at most 60 s, from the claim)
    work = min(2.0 * slowness, 15.0)
    with make_pipeline([agent("a1", FLEET_STUB_WORK=str(work))], lease_ttl=120.0) as pipe:
        pipe.store.create(NewCard(id="b1", title="keeps a1 busy", target_agent="a1"))
        assert pipe.deliver(pipe.tick_for_one())["delivered"] == "b1"
        wait_until(lambda: pipe.report_status()["agents"] and _busy(pipe, "a1"), 10 * slowness)
        # a second card for a1 while it works (claimed by hand: the tick would not)
        pipe.store.create(NewCard(id="b2", title="next", target_agent="a1"))
        claim = pipe.store.claim("a1", "implementer", "testhost", lease_ttl=240, card_id="b2")
        assert claim is not None
        message = SentTask(DELIVER_TASK, ("b2", claim.token, "a1"), {})
        first = pipe.deliver(message)
        assert "retry" in first, first
        assert pipe.typed("b2") == 0
        assert pipe.store.get("b2").status is CardStatus.CLAIMED
        retries = 1
        while (result := pipe.deliver(message)).get("retry") is not None:
            retries += 1
            time.sleep(result["retry"])
        assert result.get("delivered") == "b2", result
        assert retries > 1
        wait_done(pipe, "b2", slowness)
        assert pipe.typed("b2") == 1 and pipe.typed("b1") == 1


def test_pane_busy_past_the_budget_is_left_to_lease_expiry(
    make_pipeline: PipelineFactory, slowness: float
) -> None:
    lease = 4.0 * slowness
    with make_pipeline([agent("h1", FLEET_STUB_MODE="hang")], lease_ttl=lease) as pipe:
        pipe.store.create(NewCard(id="hang", title="never finished", target_agent="h1"))
        assert pipe.deliver(pipe.tick_for_one())["delivered"] == "hang"
        wait_until(lambda: pipe.report_status() and _busy(pipe, "h1"), 10 * slowness)
        pipe.store.create(NewCard(id="w1", title="waits", target_agent="h1"))
        claim = pipe.store.claim("h1", "implementer", "testhost", lease_ttl=lease, card_id="w1")
        assert claim is not None
        message = SentTask(DELIVER_TASK, ("w1", claim.token, "h1"), {})
        while (result := pipe.deliver(message)).get("retry") is not None:
            time.sleep(result["retry"])
        assert "undelivered" in result, result
        assert pipe.typed("w1") == 0
        assert "undelivered" in kinds_of(pipe, "w1")
        wait_until(
            lambda: any(r.card_id == "w1" for r in pipe.store.reclaim_expired()),
            lease * 2,
            what="w1's lease expired and reclaimed",
        )
        card = pipe.store.get("w1")
        assert card.status is CardStatus.READY and card.attempts == 1, card


def test_delivery_failing_max_attempts_times_blocks_the_card(
    make_pipeline: PipelineFactory,
) -> None:
    from tests.host.conftest import DRAFT_PROGRAM

    drafter = {
        "name": "d0",
        "runtime": "draft",
        "class": "drafter",
        "command": f"{sys.executable} {DRAFT_PROGRAM}",
        "env": {"FLEET_NUDGE": "0"},
    }
    with make_pipeline([drafter], max_attempts=2) as pipe:
        pipe.store.create(NewCard(id="nd", title="never typed", target_agent="d0"))
        first = pipe.deliver(pipe.tick_for_one())
        assert "not accepted" in first["released"], first
        assert pipe.store.get("nd").status is CardStatus.READY
        second = pipe.deliver(pipe.tick_for_one())
        assert "delivery failed 2 times" in second["blocked"], second
        card = pipe.store.get("nd")
        assert card.status is CardStatus.BLOCKED and card.attempts == 0, card
        assert pipe.tick()["claimed"] == [] and pipe.take_deliveries() == []
        kinds = kinds_of(pipe, "nd")
        assert kinds.count("claimed") == 2 and kinds[-1] == "blocked", kinds


def _busy(pipe: Pipeline, agent_name: str) -> bool:
    rows = {row.agent: row for row in pipe.store.agent_statuses()}
    return rows[agent_name].readiness == "working"
