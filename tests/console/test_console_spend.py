"""Spend on the console: a card's page shows its tokens and cost by model from the ledger
(``unknown`` for a model with no price), and the board's JSON carries each card's spend and
the fleet's total today — the same read (``cards_spend``) as ``fleet board``."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime

from fleet_queue.cards import NewCard
from fleet_queue.spend.usage import SpendRow, Tokens
from tests.console.conftest import ConsoleServer
from tests.console.test_console_actions import LOGIN

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")


def get(console: ConsoleServer, path: str) -> str:
    req = urllib.request.Request(console.url + path, headers={"Authorization": LOGIN})
    with urllib.request.urlopen(req, timeout=30) as reply:
        return str(reply.read().decode())


def test_card_page_and_board_show_the_ledger_spend_by_model_and_unknown_unpriced(
    console: ConsoleServer,
) -> None:
    store = console.pipeline.store
    store.create(NewCard(id="sp-1", title="spent on"))
    store.create(NewCard(id="sp-2", title="never ran"))
    rows = [
        SpendRow("a1", TODAY, "claude-sonnet-4-5", Tokens(1000, 100, 10, 20), 0.0046, "sp-1"),
        SpendRow("a1", TODAY, "mystery-9", Tokens(7, 3, 0, 0), None, "sp-1"),
        SpendRow("a1", TODAY, "claude-sonnet-4-5", Tokens(50, 5, 0, 0), 0.000225, None),
    ]
    for row in rows:
        store.record_spend(row.agent, [], [row])

    page = get(console, "/cards/sp-1")
    spend = page.split("<h2>Spend</h2>", 1)[1].split("<h2>", 1)[0]
    cells = [re.findall(r"<t[dh]>([^<]*)</t[dh]>", r) for r in spend.split("<tr>")[2:]]
    assert cells == [
        ["claude-sonnet-4-5", "1000", "100", "10", "20", "1130", "$0.0046"],
        ["mystery-9", "7", "3", "0", "0", "10", "unknown"],
        ["all models", "1007", "103", "10", "20", "1140", "$0.0046+?"],
    ]
    assert "none read" in get(console, "/cards/sp-2")

    board = json.loads(get(console, "/api/board"))
    cards = {c["id"]: c for col in board["columns"] for c in col["cards"]}
    assert cards["sp-1"]["spend"]["tokens"] == 1140
    assert cards["sp-1"]["spend"]["cost_known"] is False
    assert cards["sp-1"]["spend_text"] == "$0.0046+?"
    assert cards["sp-2"]["spend"] is None
    # the fleet's today counts the spend outside any card too
    assert board["spend_today"]["tokens"] == 1140 + 55
    assert board["spend_today"]["cost"] == round(0.0046 + 0.000225, 6)
    assert "spend today $0.0048+? (1195 tokens)" in " ".join(get(console, "/").split())
