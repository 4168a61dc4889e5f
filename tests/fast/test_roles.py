"""Role-aware dispatch through the in-process pipeline: untargeted work goes to workers,
the orchestrator and the enhancer get only what is aimed at them (or an opt-in); a card
for an agent or class no roster has is refused, or accepted and shown untargetable."""

from __future__ import annotations

import json

import pytest

from fleet_queue.api import Backlog
from fleet_queue.board import build_board
from fleet_queue.cards import CardStatus, NewCard
from fleet_queue.doctor import check_targets
from fleet_queue.errors import UsageError
from fleet_queue.targets import untargetable
from tests.fast.conftest import PipelineFactory, agent
from tests.support.cli import run_fleet
from tests.support.pipeline import Pipeline, SentTask
from tests.support.poll import wait_until

TEAM = [
    agent("lead", "orchestrator", FLEET_STUB_WORK="0.1"),
    agent("enh", "enhancer", FLEET_STUB_WORK="0.1"),
    agent("w1", FLEET_STUB_WORK="0.1"),
    agent("w2", FLEET_STUB_WORK="0.1"),
]


def run_until_done(pipe: Pipeline, ids: list[str], slowness: float) -> dict[str, str]:
    """Tick and deliver until every card is done; who got each card."""
    owners: dict[str, str] = {}
    retry: list[SentTask] = []

    def step() -> bool:
        pipe.tick()
        messages, retry[:] = [*retry, *pipe.take_deliveries()], []
        for message in messages:
            card_id, _, name = message.args
            owners[card_id] = name
            if "retry" in pipe.deliver(message):  # a pane still busy: as Celery would
                retry.append(message)
        return all(pipe.store.get(i).status is CardStatus.DONE for i in ids)

    wait_until(step, timeout=60 * slowness, interval=0.1, what=f"{ids} done")
    return owners


def test_untargeted_cards_go_only_to_workers(
    make_pipeline: PipelineFactory, slowness: float
) -> None:
    with make_pipeline(TEAM) as pipe:
        ids = [f"u{i}" for i in range(8)]
        pipe.store.create_many([NewCard(id=i, title="anyone's") for i in ids])
        pipe.tick()
        first = pipe.take_deliveries()
        assert {m.args[2] for m in first} == {"w1", "w2"}, "untargeted cards to a non-worker"
        for message in first:
            pipe.deliver(message)
        owners = run_until_done(pipe, ids, slowness)
        assert set(owners.values()) <= {"w1", "w2"}, owners
        # aimed at their class, the orchestrator and the enhancer do take cards
        pipe.store.create(NewCard(id="plan", title="plan it", target_class="orchestrator"))
        pipe.store.create(NewCard(id="tune", title="tune it", target_agent="enh"))
        owners = run_until_done(pipe, ["plan", "tune"], slowness)
        assert owners == {"plan": "lead", "tune": "enh"}


def test_takes_untargeted_opts_an_enhancer_in(
    make_pipeline: PipelineFactory, slowness: float
) -> None:
    team = [*TEAM[:1], {**TEAM[1], "takes_untargeted": True}, TEAM[2]]
    with make_pipeline(team) as pipe:
        pipe.store.create_many([NewCard(id=f"o{i}", title="anyone's") for i in range(2)])
        pipe.tick()
        assert {m.args[2] for m in pipe.take_deliveries()} == {"enh", "w1"}


def test_unknown_targets_are_refused_or_shown_untargetable(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_pipeline(TEAM[2:]) as pipe:
        backlog = Backlog(pipe.settings, store=pipe.store)
        with pytest.raises(UsageError, match="no agent 'ghost' in the roster"):
            backlog.create("g1", "for nobody", target_agent="ghost")
        with pytest.raises(UsageError, match="no class 'painter' in the roster"):
            backlog.create_many([NewCard(id="ok", title="x"), NewCard(id="p", title="y",
                                 target_class="painter")])  # fmt: skip
        assert pipe.store.list() == [], "a refused create wrote something"
        backlog.create("g2", "later", target_agent="ghost", allow_unknown_target=True)
        board = build_board(pipe.store, roster=pipe.roster)
        card = board.column("ready").cards[0]
        assert card.waits_for == "untargetable: no agent 'ghost' in the roster"
        assert board.counts["untargetable"] == 1

        # stats and doctor count them too, and say what to do
        backlog.create("p2", "paint", target_class="painter", allow_unknown_target=True)
        backlog.create("w", "for w1", target_agent="w1")
        found = untargetable(pipe.store, pipe.settings)
        assert found == {"agent 'ghost'": 1, "class 'painter'": 1}
        check = check_targets(pipe.settings)
        assert check.level == "warn"
        assert check.detail == (
            "2 ready cards for no agent in the roster: agent 'ghost' (1), class 'painter' (1)"
        )
        assert "fleet agent add" in check.hint
        monkeypatch.setenv("FLEET_HOME", str(pipe.settings.home))
        monkeypatch.setenv("FLEET_HOST", pipe.settings.host)
        stats = run_fleet("backlog", "stats", "--json")
        assert stats.exit_code == 0, stats.stderr
        data = json.loads(stats.stdout)
        assert data["untargetable"] == 2 and data["untargetable_targets"] == found
        table = run_fleet("backlog", "stats")
        assert "2 ready cards for no agent in the roster" in table.stdout
        assert "fleet agent add" in table.stdout
        pipe.store.block("g2", "nobody")
        pipe.store.block("p2", "nobody")
        assert check_targets(pipe.settings).level == "ok"
