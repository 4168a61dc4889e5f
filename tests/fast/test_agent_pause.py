"""``fleet agent pause|resume NAME`` through the in-process pipeline: the tick gives a paused
agent nothing, a delivery already on its way is released with the reason, the host worker
reports it ``paused``; resume lets it work again. Each is an event with the actor."""

from __future__ import annotations

import pytest

from fleet_queue.cards import CardStatus, EventKind, NewCard
from tests.fast.conftest import PipelineFactory, agent
from tests.support.cli import run_fleet


def test_a_paused_agent_gets_no_card_and_a_late_delivery_is_released(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_pipeline([agent("a1"), agent("a2")]) as pipe:
        s = pipe.settings
        for key, value in {
            "FLEET_HOME": str(s.home), "FLEET_HOST": s.host, "FLEET_TMUX_SOCKET": s.tmux_socket,
            "FLEET_BROKER_URL": str(s.broker_url), "FLEET_NUDGE": "0",
        }.items():  # fmt: skip
            monkeypatch.setenv(key, value)
        pipe.store.create(NewCard(id="late", title="for a1", target_agent="a1"))
        on_its_way = pipe.tick_for_one()  # claimed for a1 before the pause
        paused = run_fleet("agent", "pause", "a1", "--reason", "drill")
        assert paused.exit_code == 0, paused.stderr
        assert pipe.deliver(on_its_way) == {"released": "agent a1 is paused by " + _actor(pipe)}
        assert pipe.store.get("late").status is CardStatus.READY
        assert not any("fleet card done late" in m for m in pipe.messages("a1"))

        pipe.store.create(NewCard(id="any", title="anyone's"))
        pipe.tick()
        assert [m.args[2] for m in pipe.take_deliveries()] == ["a2"]
        pipe.report_status()
        rows = {row.agent: row.readiness for row in pipe.store.agent_statuses()}
        assert rows["a1"] == "paused"

        resumed = run_fleet("agent", "resume", "a1")
        assert resumed.exit_code == 0, resumed.stderr
        pipe.report_status()
        assert pipe.tick_for_one().args[:1] == ("late",)
        kinds = [(e.kind, e.agent) for e in pipe.store.events() if e.card_id is None]
        assert (EventKind.AGENT_PAUSED, "a1") in kinds and (EventKind.AGENT_RESUMED, "a1") in kinds
        assert run_fleet("agent", "pause", "nobody").exit_code != 0


def _actor(pipe: object) -> str:
    from fleet_queue.audit import actor

    return f"{actor()}: drill"
