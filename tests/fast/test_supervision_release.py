"""A dead pane's card goes back to ``ready`` in the same status round that restarts the
pane, with the reason, not a lease later: real tmux, real stub agent, the host worker's
own status collection (probe, supervision, restart) run in process."""

from __future__ import annotations

import os
import signal

import pytest

from fleet_queue.cards import CardStatus, EventKind, NewCard
from fleet_queue.errors import FleetError
from tests.fast.conftest import PipelineFactory, agent
from tests.support.poll import wait_until


def test_the_card_of_a_killed_pane_is_released_at_once(
    make_pipeline: PipelineFactory, slowness: float
) -> None:
    from workers.tmux import TmuxServer, pane_target

    with make_pipeline([agent("a1", FLEET_STUB_WORK="600")], lease_ttl=3600.0) as pipe:
        pipe.store.create(NewCard(id="held", title="long work", target_agent="a1"))
        result = pipe.deliver(pipe.tick_for_one())
        assert result.get("status") == "delivered" or result.get("delivered"), result
        before = pipe.store.get("held")
        assert before.status is CardStatus.CLAIMED and before.lease_owner == "a1"

        server = TmuxServer.for_fleet(pipe.settings, pipe.roster)
        pid = int(server.run("display-message", "-p", "-t", pane_target("a1"), "#{pane_pid}")[0])
        os.kill(pid, signal.SIGKILL)
        rounds: list[list[str]] = []

        def released() -> bool:
            rounds.append(pipe.report_status().get("supervision", []))
            return pipe.store.get("held").status is CardStatus.READY

        wait_until(released, timeout=10 * slowness, interval=0.2, what="the card released")
        assert "a1: released" in rounds[-1] and "a1: restarted" in rounds[-1], rounds
        card = pipe.store.get("held")
        assert card.lease_owner is None
        with pytest.raises(FleetError):  # the dead pane's token no longer finishes it
            pipe.store.complete("held", before.token, result="late")
        reasons = [e.detail for e in pipe.store.events(card_id="held", kind=EventKind.RELEASED)]
        assert reasons == ["agent a1's pane died on host testhost"]
        assert card.attempts == before.attempts - 1, "a dead pane uses up no attempt of the card"


def test_fleet_up_resets_the_breaker_of_the_agents_it_starts(
    make_pipeline: PipelineFactory,
) -> None:
    """``fleet up`` starts its agents as an operator's ``fleet start``: a broken agent
    (its breaker's file on this host) is no longer broken, and a stopped one no longer
    stopped; supervision may restart them again."""
    from workers.agent_marks import AgentMarks, load_marks, save_marks
    from workers.fleet_agents import HOST_AGENTS

    with make_pipeline([agent("a1")]) as pipe:
        run_dir = pipe.settings.run_dir
        save_marks(run_dir, "a1", AgentMarks(broken="died 6 times", restarts=[1.0, 2.0]))
        HOST_AGENTS.start(pipe.settings)
        marks = load_marks(run_dir, "a1")
        assert (marks.broken, marks.restarts, marks.stopped) == (None, [], False), marks
