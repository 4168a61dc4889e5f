"""``fleet spend`` and ``fleet ps`` read the ledger: sums by agent, card, model and day, the
unknown cost said as such, an over-budget agent shown so; bad input is one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import load_settings
from fleet_queue.spend.usage import SpendRow, Tokens
from fleet_queue.store import CardStore
from tests.support.cli import run_fleet

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
ROSTER = {
    "preset": "minimal",
    "agents": [
        {"name": "a1", "runtime": "claude", "class": "coder"},
        {"name": "a2", "runtime": "codex", "class": "coder"},
    ],
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "fleet"
    monkeypatch.setenv("FLEET_HOME", str(home))
    settings = load_settings()
    write_roster(parse_roster(ROSTER, "test"), settings.effective_roster_path)
    rows = [
        SpendRow("a1", TODAY, "claude-sonnet-4-5", Tokens(1000, 100, 0, 0), 0.0045, "c1"),
        SpendRow("a1", TODAY, "claude-sonnet-4-5", Tokens(10, 1, 0, 0), 0.000045, "c2"),
        SpendRow("a2", TODAY, "mystery-1", Tokens(5, 5, 0, 0), None, "c1"),
        SpendRow("a2", "2020-01-01", "gpt-5", Tokens(9, 9, 9, 9), 1.0, "old"),
    ]
    with CardStore.from_settings(settings) as store:
        for row in rows:
            store.record_spend(row.agent, [], [row])
    return home


def test_spend_sums_by_agent_card_model_and_says_an_unknown_cost(home: Path) -> None:
    by_agent = json.loads(run_fleet("spend", "--json").stdout)
    groups = {g["agent"]: g for g in by_agent["groups"]}
    assert groups["a1"]["input_tokens"] == 1010 and groups["a1"]["cost"] == 0.004545
    assert groups["a2"]["cost_known"] is False and groups["a2"]["unpriced_tokens"] == 10
    assert by_agent["total"]["output_tokens"] == 106  # the 2020 row is not today's
    by_card = json.loads(run_fleet("spend", "--json", "--by", "card").stdout)
    assert [g["card"] for g in by_card["groups"]] == ["c1", "c2"]
    everything = json.loads(
        run_fleet("spend", "--json", "--by", "day", "--since", "2020-01-01").stdout
    )
    assert [g["day"] for g in everything["groups"]] == ["2020-01-01", TODAY]
    table = run_fleet("spend", "--by", "model").stdout
    assert "mystery-1" in table and "$0.0000+?" in table


def test_ps_shows_spend_today_and_an_over_budget_agent(home: Path) -> None:
    (home / "budgets.yaml").write_text("agents:\n  a1: {day: 0.004}\n")
    rows = {r["agent"]: r for r in json.loads(run_fleet("ps", "--json").stdout)["agents"]}
    assert rows["a1"]["budget"] == "over budget: agent a1 day: $0.0045 of $0.004"
    assert rows["a1"]["spend_today"] == pytest.approx(0.004545)
    assert rows["a2"]["budget"] is None and rows["a2"]["cost_known"] is False
    table = run_fleet("ps").stdout
    assert "over budget" in table and "$0.0045" in table


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("spend", "--by", "host"), "--by 'host': one of agent, card, model, day"),
        (("spend", "--since", "yesterday"), "--since 'yesterday': not a day (YYYY-MM-DD)"),
        (("spend", "--days", "0"), "--days must be at least 1"),
    ],
)
def test_bad_spend_input_is_one_line_and_exit_2(
    home: Path, args: tuple[str, ...], says: str
) -> None:
    run = run_fleet(*args)
    assert run.exit_code == 2
    assert run.stderr.strip() == f"fleet: {says}"


def test_a_bad_budgets_file_is_one_line(home: Path) -> None:
    (home / "budgets.yaml").write_text("agents:\n  a1: {day: -1}\n")
    run = run_fleet("ps")
    assert run.exit_code == 2
    assert run.stderr.strip().startswith(f"fleet: {home / 'budgets.yaml'}: agents.a1.day:")
