"""The backlog CLI through the real entry point: output, --json, and every refusal's exit code.

``fleet_queue.cli.main`` is what turns a FleetError into one line and an exit code, so the
tests drive it (not the bare Typer app) with Click's CliRunner capturing the output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fleet_queue.cli import main


class _Main:
    """Lets CliRunner.invoke call the real ``main`` with argv."""

    name = "fleet"

    def main(self, args: list[str], prog_name: str | None = None, **_: Any) -> None:
        sys.argv = ["fleet", *args]
        main()


def fleet(*args: str) -> Result:
    return CliRunner().invoke(_Main(), list(args))  # type: ignore[arg-type]


def data(*args: str) -> Any:
    result = fleet(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def backlog(fleet_home: Path) -> Path:
    assert fleet("backlog", "create", "--id", "A1", "--title", "schema", "-p", "5").exit_code == 0
    assert fleet("backlog", "create", "--id", "A2", "--title", "svc", "-d", "A1").exit_code == 0
    return fleet_home


def test_create_list_show(backlog: Path) -> None:
    listed = data("backlog", "list")
    assert [c["id"] for c in listed] == ["A1", "A2"]
    assert [c["id"] for c in data("backlog", "list", "--ready-only")] == ["A1"]
    shown = data("backlog", "show", "A2")
    assert shown["depends_on"] == ["A1"] and shown["events"][0]["kind"] == "created"
    table = fleet("backlog", "list")
    assert table.exit_code == 0 and "schema" in table.output


def test_claim_done_and_stale_token(backlog: Path) -> None:
    claim = data("backlog", "claim", "--agent", "w1", "--ttl", "60")
    assert claim["card"]["id"] == "A1" and claim["token"] == 1
    stale = fleet("card", "done", "A1", "--token", "2")
    assert stale.exit_code == 4 and stale.output.count("\n") == 1
    assert stale.output.startswith("fleet: stale token 2")
    assert fleet("card", "done", "A1", "--token", "1").exit_code == 0
    assert data("backlog", "show", "A1")["status"] == "done"
    assert data("backlog", "claim", "--agent", "w1")["card"]["id"] == "A2"
    assert data("backlog", "claim", "--agent", "w2") is None


def test_card_fail_renew_reclaim_block(backlog: Path) -> None:
    data("backlog", "claim", "--agent", "w1", "--id", "A1")
    assert data("backlog", "renew", "A1", "--token", "1", "--ttl", "999")["status"] == "claimed"
    reclaimed = data("backlog", "reclaim", "--id", "A1")
    assert reclaimed[0]["outcome"] == "ready"
    assert data("backlog", "reclaim") == []
    data("backlog", "claim", "--agent", "w1")
    failed = fleet("card", "fail", "A1", "--token", "2", "--reason", "cannot")
    assert failed.exit_code == 0
    assert data("backlog", "unblock", "A1")["status"] == "ready"
    assert data("backlog", "block", "A1", "--reason", "hold")["status"] == "blocked"
    assert data("backlog", "stats")["counts"]["blocked"] == 1
    kinds = [e["kind"] for e in data("backlog", "events", "--card", "A1")]
    assert kinds[-2:] == ["blocked", "operator"]  # the block, then who did it
    assert data("backlog", "events", "--since", "3600", "--kind", "claimed")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["backlog", "create", "--id", "A1", "--title", "again"], 4, "already exists"),
        (["backlog", "create", "--id", "bad id", "--title", "x"], 2, "whitespace"),
        (["backlog", "create", "--id", "X", "--title", "x", "-d", "nope"], 3, "nope"),
        (["backlog", "show", "nope"], 3, "no card 'nope'"),
        (["backlog", "link", "A1", "A2"], 2, "A1 -> A2 -> A1"),
        (["backlog", "link", "A1", "ghost"], 3, "ghost"),
        (["card", "done", "ghost", "--token", "1"], 3, "no card"),
        (["card", "done", "A1", "--token", "1"], 4, "stale token"),
        (["card", "fail", "A1", "--token", "1", "--reason", "x"], 4, "stale token"),
        (["backlog", "complete", "A1", "--token", "0"], 4, "stale token"),
        (["backlog", "renew", "A1", "--token", "0"], 4, "stale token"),
        (["backlog", "unblock", "A1"], 4, "only blocked or failed"),
        (["backlog", "reclaim", "--id", "A1"], 4, "not claimed"),
        (["backlog", "claim", "--agent", "w", "--id", "A2"], 4, "unfinished"),
        (["backlog", "import", "/no/such/file.yaml"], 2, "no such file"),
    ],
)
def test_refusals_one_line_nonzero_nothing_changed(
    backlog: Path, args: list[str], code: int, message: str
) -> None:
    before = data("backlog", "list"), data("backlog", "events")
    result = fleet(*args)
    assert result.exit_code == code, result.output
    assert result.output.startswith("fleet: ") and result.output.count("\n") == 1
    assert message in result.output
    assert (data("backlog", "list"), data("backlog", "events")) == before


def test_import_formats_and_refusal(fleet_home: Path, tmp_path: Path) -> None:
    goals = tmp_path / "goals.yaml"
    goals.write_text(
        "goals:\n"
        "- {id: A1, title: NS yaml, phase: 1, priority: must-have, depends_on: []}\n"
        "- {id: A2, title: Schema, phase: 1, priority: should-have, depends_on: [A1]}\n"
    )
    assert data("backlog", "import", str(goals)) == {"created": 2, "existing": []}
    assert data("backlog", "import", str(goals)) == {"created": 0, "existing": ["A1", "A2"]}
    shown = data("backlog", "show", "A2")
    assert (shown["priority"], shown["phase"], shown["unmet_deps"]) == (20, "1", 1)
    lines = tmp_path / "cards.jsonl"
    lines.write_text(
        '{"id": "j1", "title": "one"}\n\n{"id": "j2", "title": "two", "depends_on": ["j1"]}\n'
    )
    assert data("backlog", "import", str(lines))["created"] == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "k1", "title": "ok"}\n{"id": "k2"}\n')
    result = fleet("backlog", "import", str(bad))
    assert result.exit_code == 2 and f"{bad}:2:" in result.output
    cyc = tmp_path / "cyc.yaml"
    cyc.write_text("- {id: p, title: p, depends_on: [q]}\n- {id: q, title: q, depends_on: [p]}\n")
    result = fleet("backlog", "import", str(cyc))
    assert result.exit_code == 2 and "p -> q -> p" in result.output
    assert {c["id"] for c in data("backlog", "list")} == {"A1", "A2", "j1", "j2"}


def test_large_import_shows_progress(fleet_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text("".join(f'{{"id": "b{i}", "title": "card {i}"}}\n' for i in range(3000)))
    result = fleet("backlog", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 3000 card(s)" in result.stdout
    assert "3000/3000" in result.stderr


def test_db_upgrade_and_current(fleet_home: Path) -> None:
    fresh = data("db", "current")
    assert fresh["current"] is None and fresh["up_to_date"] is False
    assert data("db", "upgrade")["to"] == fresh["head"]
    assert data("db", "current")["up_to_date"] is True
    assert fleet("db", "upgrade").exit_code == 0
