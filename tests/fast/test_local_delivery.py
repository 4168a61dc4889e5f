"""A host worker types its own tick's claims (``workers.local_delivery``): the real tick,
real panes and Redis, the local delivery's own threads; no delivery message unless the
pane is busy, and a stopping worker types nothing more."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fleet_queue.cards import CardStatus, NewCard
from fleet_queue.local_tick import LocalTick
from fleet_queue.pause import paused_file
from fleet_queue.private import write_private
from fleet_queue.tasks import locked_tick
from tests.fast.conftest import PipelineFactory, agent
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_until
from workers.agent_socket import start_agent_socket
from workers.local_delivery import LocalDelivery
from workers.tasks import type_card


@contextmanager
def local(pipe: Pipeline) -> Iterator[LocalDelivery]:
    """``pipe``'s context with a host worker's local delivery, as the worker sets it."""
    delivery = LocalDelivery(pipe.context, type_card, threads=2)
    pipe.context.local_delivery = delivery
    try:
        yield delivery
    finally:
        delivery.stop()
        pipe.context.local_delivery = None


@contextmanager
def reporting(pipe: Pipeline) -> Iterator[None]:
    """Status rounds every interval, as the worker's own: the tick trusts no row older than
    a few intervals, and a busy machine may take longer than that for a few cards."""
    stop = threading.Event()

    def rounds() -> None:
        while not stop.wait(pipe.settings.host_status_interval):
            pipe.report_status()

    thread = threading.Thread(target=rounds, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def kinds(pipe: Pipeline, card_id: str) -> list[str]:
    return [str(event.kind) for event in pipe.store.events(card_id=card_id)]


def test_the_tick_types_its_claim_without_a_message(pipeline: Pipeline, slowness: float) -> None:
    with local(pipeline):
        pipeline.store.create(NewCard(id="l1", title="typed here", target_agent="a2"))
        result = pipeline.tick()
        assert result["claimed"] == ["l1"], result
        assert pipeline.take_deliveries() == [], "no delivery message for a local claim"
        wait_until(
            lambda: pipeline.store.get("l1").status is CardStatus.DONE,
            timeout=20 * slowness,
            what="l1 typed locally and closed by its stub",
        )
    card = pipeline.store.get("l1")
    assert pipeline.typed("l1", card.token) == 1
    assert pipeline.typed("l1") == 1
    assert card.delivered_at is not None
    assert kinds(pipeline, "l1").count("delivered") == 1


def test_a_busy_pane_goes_the_message_way_and_nothing_is_typed(
    make_pipeline: PipelineFactory, slowness: float
) -> None:
    work = min(3.0 * slowness, 15.0)
    with make_pipeline([agent("a1", FLEET_STUB_WORK=str(work))], lease_ttl=120.0) as pipe:
        with local(pipe):
            pipe.store.create(NewCard(id="m1", title="keeps a1 busy", target_agent="a1"))
            assert pipe.tick()["claimed"] == ["m1"]
            wait_until(lambda: pipe.store.get("m1").delivered_at is not None, 10 * slowness)
            # a second card for a1 while it works, claimed by hand and handed over as the
            # tick would: the pane is busy, so it is queued as a message for Celery's retries
            pipe.store.create(NewCard(id="m2", title="next", target_agent="a1"))
            claim = pipe.store.claim("a1", "implementer", "testhost", 240, card_id="m2")
            assert claim is not None
            assert pipe.context.local_delivery is not None
            assert pipe.context.local_delivery(claim) is True
            queued = wait_until(pipe.take_deliveries, 10 * slowness, what="m2 queued")
        assert [m.args for m in queued] == [("m2", claim.token, "a1")]
        assert pipe.typed("m2") == 0
        assert pipe.store.get("m2").status is CardStatus.CLAIMED
        # the message then delivers it once the pane is free, as any delivery
        while (result := pipe.deliver(queued[0])).get("retry") is not None:
            time.sleep(result["retry"])
        assert result.get("delivered") == "m2", result
        assert pipe.typed("m2", claim.token) == 1


def test_a_stopping_worker_releases_what_it_has_not_typed(pipeline: Pipeline) -> None:
    with local(pipeline) as delivery:
        delivery.stop()
        pipeline.store.create(NewCard(id="s1", title="not typed", target_agent="a1"))
        claim = pipeline.store.claim("a1", "implementer", "testhost", 120, card_id="s1")
        assert claim is not None
        assert delivery(claim) is False, "a stopped worker takes no claim"
        # one already queued in its threads when the stop came goes back to ready
        delivery._deliver(claim)
    card = pipeline.store.get("s1")
    assert card.status is CardStatus.READY, card
    assert pipeline.typed("s1") == 0


def test_a_claim_for_another_host_is_left_to_its_message(pipeline: Pipeline) -> None:
    with local(pipeline) as delivery:
        pipeline.store.create(NewCard(id="h1", title="elsewhere", target_agent="a1"))
        claim = pipeline.store.claim("a1", "implementer", "otherhost", 120, card_id="h1")
        assert claim is not None
        assert delivery(claim) is False
    assert pipeline.typed("h1") == 0


def test_a_close_through_the_socket_ticks_and_types_the_next_card_here(
    pipeline: Pipeline, slowness: float
) -> None:
    """The agent's ``fleet card done`` reaches this worker's socket; the store's change
    wakes the worker's own tick, whose claim is typed here: no message, no beat."""
    ctx = pipeline.context
    server = start_agent_socket(ctx)
    assert server is not None
    ticker = LocalTick(ctx, locked_tick).start()
    ctx.change_hook = ticker
    try:
        with local(pipeline), reporting(pipeline):
            for n in (1, 2, 3):
                pipeline.store.create(NewCard(id=f"n{n}", title=f"next {n}", target_agent="a1"))
            wait_until(
                lambda: all(
                    pipeline.store.get(f"n{n}").status is CardStatus.DONE for n in (1, 2, 3)
                ),
                timeout=30 * slowness,
                what="three cards for a1 done one after the other, each ticked by the last close",
            )
            assert pipeline.take_deliveries() == []
    finally:
        ticker.stop()
        ctx.change_hook = None
        server.stop()
    for n in (1, 2, 3):
        assert pipeline.typed(f"n{n}") == 1
    assert not any("fleet card done n" in text for text in pipeline.messages("a2"))


def test_a_host_paused_after_the_claim_types_nothing(pipeline: Pipeline) -> None:
    with local(pipeline) as delivery:
        pipeline.store.create(NewCard(id="p1", title="paused after claim", target_agent="a1"))
        claim = pipeline.store.claim("a1", "implementer", "testhost", 120, card_id="p1")
        assert claim is not None
        write_private(paused_file(pipeline.settings), "by=test reason=maintenance\n")
        try:
            delivery._deliver(claim)
        finally:
            paused_file(pipeline.settings).unlink()
    assert pipeline.store.get("p1").status is CardStatus.READY
    released = [e for e in pipeline.store.events(card_id="p1") if e.kind == "released"]
    assert released and "paused" in (released[-1].detail or ""), released
    assert pipeline.typed("p1") == 0
