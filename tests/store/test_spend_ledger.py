"""The spend ledger on both backends: a host scan of real record files, counted once
across scans and restarts; prices and unknown models; budgets that hold the tick."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.cards import AgentStatus, EventKind, NewCard
from fleet_queue.errors import ConflictError
from fleet_queue.fleet_view import fleet_rows
from fleet_queue.roster import AgentSpec, Roster
from fleet_queue.settings import Settings
from fleet_queue.spend.budgets import Budgets, evaluate, held_agents
from fleet_queue.spend.usage import FileAdvance, FileMark, SpendRow, Tokens
from fleet_queue.store import CardStore
from fleet_queue.store.spend_ledger import SpendTotal
from fleet_queue.supervisor import run_tick
from tests.spend.records import (
    append,
    claude_assistant,
    claude_prompt,
    codex_token_count,
    codex_turn_context,
    codex_user,
)
from workers.spend_scan import flag_path, scan_host

TODAY = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
CARD = "Card c-9: x\n\nWhen done, run: fleet card done c-9 --token 1"


def _agent(name: str, runtime: str, cls: str = "worker") -> AgentSpec:
    return AgentSpec.model_validate({"name": name, "runtime": runtime, "class": cls})


@pytest.fixture
def roster() -> Roster:
    agents = [_agent("cc", "claude"), _agent("cx", "codex"), _agent("w2", "stub")]
    return Roster(preset="minimal", agents=agents)


@pytest.fixture
def spend_settings(tmp_path: Path, store_url: str) -> Settings:
    home = tmp_path / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    return Settings(home=home, database_url=store_url, host="h1", tenant="t1")


def _records(home: Path) -> tuple[Path, Path]:
    transcript = home / "agents" / "cc" / "claude" / "projects" / "-work" / "s.jsonl"
    rollout = (
        home / "agents" / "cx" / "codex" / "sessions" / "2026" / "12" / "02" / "rollout-a.jsonl"
    )
    usage = (1200, 345, 100, 50)
    append(
        transcript,
        claude_prompt(CARD),
        claude_assistant("m1", "r1", usage, "text", timestamp=TODAY),
        claude_assistant("m1", "r1", usage, "tool_use", timestamp=TODAY),
    )
    append(
        rollout,
        codex_turn_context("gpt-5-codex"),
        codex_user(CARD),
        codex_token_count((1300, 100, 345), (1300, 100, 345), at=TODAY),
        codex_token_count((1300, 100, 345), (1300, 100, 345), at=TODAY),
    )
    return transcript, rollout


def _ledger(store: CardStore) -> dict[tuple[str, str | None, str], tuple[Tokens, float | None]]:
    day = TODAY[:10]
    return {(r.agent, r.card, r.model): (r.tokens, r.cost) for r in store.spend_rows(day, day)}


def test_a_scan_counts_each_request_once_across_scans_and_restarts(
    spend_settings: Settings, roster: Roster, store_url: str
) -> None:
    transcript, rollout = _records(spend_settings.home)
    with CardStore(store_url, tenant="t1", host="h1") as store:
        first = scan_host(spend_settings, roster, store)
        assert (first.files, first.turns, first.conflicts) == (2, 2, [])
        assert scan_host(spend_settings, roster, store).files == 0
        ledger = _ledger(store)
    sonnet = (1200 * 3 + 345 * 15 + 100 * 0.3 + 50 * 3.75) / 1e6
    gpt = (1200 * 1.25 + 345 * 10 + 100 * 0.125) / 1e6
    expected: dict[tuple[str, str | None, str], Any] = {
        ("cc", "c-9", "claude-sonnet-4-5"): (Tokens(1200, 345, 100, 50), pytest.approx(sonnet)),
        ("cx", "c-9", "gpt-5-codex"): (Tokens(1200, 345, 100, 0), pytest.approx(gpt)),
    }
    assert ledger == expected
    # a restarted reader (a new store object, as after a worker restart) reads on from the marks
    append(transcript, claude_assistant("m1", "r1", (1200, 345, 100, 50), "tool_use"))
    append(transcript, claude_assistant("m2", "r2", (1, 2, 3, 4), timestamp=TODAY))
    append(rollout, codex_token_count((1310, 100, 350), (10, 0, 5), at=TODAY))
    with CardStore(store_url, tenant="t1", host="h1") as store:
        assert scan_host(spend_settings, roster, store).turns == 2
        assert scan_host(spend_settings, roster, store).turns == 0
        again = _ledger(store)
    assert again[("cc", "c-9", "claude-sonnet-4-5")][0] == Tokens(1201, 347, 103, 54)
    assert again[("cx", "c-9", "gpt-5-codex")][0] == Tokens(1210, 350, 100, 0)


def test_an_unpriced_model_is_counted_with_unknown_cost_and_said_once(
    spend_settings: Settings, roster: Roster, store: CardStore
) -> None:
    transcript = spend_settings.home / "agents" / "cc" / "claude" / "projects" / "p" / "s.jsonl"
    append(
        transcript, claude_assistant("m1", "r1", (10, 1, 0, 0), model="claude-x-9", timestamp=TODAY)
    )
    scan_host(spend_settings, roster, store)
    append(
        transcript, claude_assistant("m2", "r2", (10, 1, 0, 0), model="claude-x-9", timestamp=TODAY)
    )
    scan_host(spend_settings, roster, store)
    assert _ledger(store) == {("cc", None, "claude-x-9"): (Tokens(20, 2, 0, 0), None)}
    [event] = store.events(kind=EventKind.UNPRICED)
    assert event.detail is not None and event.detail.startswith("claude-x-9:")
    # a price file gives it a price from then on
    (spend_settings.home / "prices.yaml").write_text(
        "prices:\n  claude-x-9: {input: 1, output: 2}\n"
    )
    append(
        transcript,
        claude_assistant("m3", "r3", (10, 1, 0, 0), model="claude-x-9-2026", timestamp=TODAY),
    )
    scan_host(spend_settings, roster, store)
    assert _ledger(store)[("cc", None, "claude-x-9-2026")][1] == pytest.approx(12 / 1e6)


def test_a_mark_moved_by_another_reader_refuses_the_whole_batch(store: CardStore) -> None:
    row = SpendRow("a", "2026-12-02", "m", Tokens(1, 1, 1, 1), 0.1)
    store.record_spend("a", [FileAdvance("/f", None, FileMark(10))], [row])
    with pytest.raises(ConflictError):  # this reader found the file at 0, another read it
        store.record_spend("a", [FileAdvance("/f", None, FileMark(10))], [row])
    with pytest.raises(ConflictError):
        store.record_spend("a", [FileAdvance("/f", FileMark(5), FileMark(20))], [row])
    [kept] = store.spend_rows("2026-12-02")
    assert kept.tokens == Tokens(1, 1, 1, 1)
    assert store.spend_marks("a") == {"/f": FileMark(10, {})}


def _ready(store: CardStore, host: str, *agents: str) -> None:
    store.upsert_agent_statuses(
        [
            AgentStatus(
                "t1", host, a, "stub", "worker", health=True, pane_alive=True, readiness="available"
            )
            for a in agents
        ]
    )


def test_an_agent_over_its_daily_budget_gets_no_new_card_from_the_tick(
    spend_settings: Settings, roster: Roster, store: CardStore
) -> None:
    (spend_settings.home / "budgets.yaml").write_text(
        "stop_turn: true\nagents:\n  cc: {day: 0.01}\n  w2: {day: 5}\n"
    )
    _records(spend_settings.home)
    report = scan_host(spend_settings, roster, store)  # cc spent ~$0.0090: past 80%, under 100%
    assert report.held == {}
    assert [e.detail for e in store.events(kind=EventKind.BUDGET_WARNING)] == [
        "agent cc day: $0.0090 of $0.01"
    ]
    day = TODAY[:10]
    store.record_spend(
        "cc", [], [SpendRow("cc", day, "claude-sonnet-4-5", Tokens(1000, 0, 0, 0), 0.003)]
    )
    report = scan_host(spend_settings, roster, store)
    assert report.held == {"cc": "over budget: agent cc day: $0.0120 of $0.01"}
    assert len(store.events(kind=EventKind.OVER_BUDGET)) == 1
    assert b'"continue": false' in flag_path(spend_settings.run_dir, "cc").read_bytes()
    scan_host(spend_settings, roster, store)
    assert len(store.events(kind=EventKind.OVER_BUDGET)) == 1  # said once a period
    assert len(store.events(kind=EventKind.BUDGET_WARNING)) == 1

    for n in range(2):
        store.create(NewCard(id=f"k{n}", title="t"))
    _ready(store, "h1", "cc", "w2")
    claimed = run_tick(store, roster, spend_settings, dispatch=lambda claim: None)
    assert claimed.claims == ["k0"]
    assert store.get("k0").lease_owner == "w2"
    assert store.get("k1").status == "ready"

    rows = {row.agent: row for row in fleet_rows(store, roster, spend_settings)}
    assert rows["cc"].budget == "over budget: agent cc day: $0.0120 of $0.01"
    assert rows["cc"].spend_today == pytest.approx(0.0119925)
    assert (rows["w2"].budget, rows["w2"].spend_today) == (None, None)

    (spend_settings.home / "budgets.yaml").write_text("agents:\n  cc: {day: 100}\n")
    assert scan_host(spend_settings, roster, store).held == {}
    assert not flag_path(spend_settings.run_dir, "cc").exists()


def test_class_tenant_fleet_and_token_budgets_and_even_pacing() -> None:
    agents = [_agent("a", "stub", "coder"), _agent("b", "stub", "coder"), _agent("c", "stub", "qa")]
    roster = Roster(preset="minimal", agents=agents)
    totals = [SpendTotal("t1", "a", 3.0, 3.0, 100, 900), SpendTotal("t1", "b", 3.0, 9.0, 0, 0)]
    now = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)  # 6 of 24 hours with the slack: a quarter
    budgets = Budgets.model_validate({"classes": {"coder": {"day": 5}}})
    assert set(held_agents(evaluate(budgets, totals, roster, "t1", now), roster, "t1", "t1")) == {
        "a",
        "b",
    }
    budgets = Budgets.model_validate(
        {"tenants": {"t1": {"month": 12}}, "fleet": {"month_tokens": 901}}
    )
    states = evaluate(budgets, totals, roster, "t1", now)
    assert [s.level for s in states] == ["warning", "over"]  # fleet 900 of 901 tokens; t1 $12
    assert held_agents(states, roster, "t1", "t1").keys() == {"a", "b", "c"}
    paced = Budgets.model_validate({"pacing": True, "agents": {"a": {"day": 20}, "b": {"day": 10}}})
    held = held_agents(evaluate(paced, totals, roster, "t1", now), roster, "t1", "t1")
    assert held == {"b": "ahead of pace: agent b day: $3.0000 of $10"}  # 3 > 10/4; a: 3 < 5
