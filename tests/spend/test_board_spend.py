"""``fleet board`` shows spend: each card's where the ledger has it, the fleet's today."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleet_queue.cards import NewCard
from fleet_queue.settings import load_settings
from fleet_queue.spend.usage import SpendRow, Tokens
from fleet_queue.store import CardStore
from tests.support.cli import run_fleet

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")


def test_board_shows_card_spend_and_the_fleet_total_today(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "fleet"))
    with CardStore.from_settings(load_settings()) as store:
        store.create(NewCard(id="b-1", title="priced"))
        store.create(NewCard(id="b-2", title="unpriced"))
        store.create(NewCard(id="b-3", title="none"))
        for row in (
            SpendRow("a1", TODAY, "gpt-5", Tokens(100, 10, 0, 0), 0.000225, "b-1"),
            SpendRow("a1", TODAY, "mystery-1", Tokens(5, 5, 0, 0), None, "b-2"),
            SpendRow("a1", "2020-01-01", "gpt-5", Tokens(1, 1, 0, 0), 1.5, "b-1"),
        ):
            store.record_spend(row.agent, [], [row])

    board = json.loads(run_fleet("board", "--json").stdout)
    cards = {c["id"]: c for col in board["columns"] for c in col["cards"]}
    # read from the day the card was made: the 2020 row under its id is not its spend
    assert (cards["b-1"]["spend"]["tokens"], cards["b-1"]["spend"]["cost"]) == (110, 0.000225)
    assert cards["b-2"]["spend_text"] == "unknown"
    assert cards["b-3"]["spend"] is None
    assert board["spend_today"]["tokens"] == 120
    assert board["spend_today"]["cost_known"] is False

    text = run_fleet("board").stdout
    assert "spend today $0.0002+? (120 tokens)" in text
    assert "$0.0002" in text and "unknown" in text
