"""``fleet ps`` shows the whole fleet from the store: every host, stale hosts marked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fleet_queue.cards import AgentStatus
from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import load_settings
from fleet_queue.store import CardStore
from tests.support.cli import run_fleet

ROSTER = {
    "preset": "minimal",
    "agents": [
        {"name": "near", "runtime": "stub", "class": "coder", "host": "h1"},
        {"name": "far", "runtime": "stub", "class": "coder", "host": "h2"},
        {"name": "silent", "runtime": "stub", "class": "reviewer", "host": "h3"},
    ],
}


def _status(agent: str, host: str, card: str | None = None) -> AgentStatus:
    return AgentStatus(
        tenant_id="default",
        host=host,
        agent=agent,
        runtime="stub",
        agent_class="coder",
        health=True,
        pane_alive=True,
        readiness="working" if card else "available",
        current_card=card,
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "fleet"
    monkeypatch.setenv("FLEET_HOME", str(home))
    monkeypatch.setenv("FLEET_HOST", "hub")
    monkeypatch.setenv("FLEET_TMUX_SOCKET", "fv")
    # Stale after 4 intervals + 1 s: 1.4 s here.
    monkeypatch.setenv("FLEET_HOST_STATUS_INTERVAL", "0.1")
    monkeypatch.delenv("FLEET_DATABASE_URL", raising=False)
    settings = load_settings()
    write_roster(parse_roster(ROSTER, "test"), settings.effective_roster_path)
    with CardStore.from_settings(settings) as store:
        store.upsert_agent_statuses([_status("far", "h2")])
        time.sleep(1.6)
        store.upsert_agent_statuses([_status("near", "h1", "c7"), _status("ghost", "h1")])
    return home


def test_ps_reads_every_host_from_the_store_and_marks_stale_ones(home: Path) -> None:
    run = run_fleet("ps", "--json")
    assert run.exit_code == 0, run.stderr
    rows = {row["agent"]: row for row in json.loads(run.stdout)["agents"]}
    assert rows["near"]["readiness"] == "working" and rows["near"]["current_card"] == "c7"
    assert rows["near"]["host_stale"] is False and rows["near"]["health"] is True
    assert rows["far"]["readiness"] == "stale host" and rows["far"]["host_stale"] is True
    assert rows["far"]["health"] is False, "a stale host's last word is not trusted"
    assert rows["silent"]["readiness"] == "unreported" and rows["silent"]["host"] == "h3"
    assert rows["ghost"]["in_roster"] is False


def test_ps_table_fits_80_columns_and_names_the_states(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    run = run_fleet("ps")
    assert run.exit_code == 0, run.stderr
    assert max(len(line) for line in run.stdout.splitlines()) <= 80, run.stdout
    for word in ("near", "far", "stale host", "unreported", "ghost (gone)"):
        assert word in run.stdout


def test_ps_shows_the_pause_and_local_probes_tmux(home: Path) -> None:
    assert run_fleet("pause", "--reason", "maintenance").exit_code == 0
    data = json.loads(run_fleet("ps", "--json").stdout)
    assert data["paused"]["paused"] is True and data["paused"]["reason"] == "maintenance"
    assert "PAUSED (maintenance)" in run_fleet("ps").stdout
    local = run_fleet("ps", "--local", "--json")
    assert local.exit_code == 0, local.stderr
    rows = json.loads(local.stdout)["agents"]
    # No agent runs on this host ("hub"): the local probe shows them as remote rows.
    assert {r["agent"] for r in rows} == {"near", "far", "silent"}
    assert all(r["session_present"] is None for r in rows)


def test_agent_remove_drops_its_rows_from_ps(home: Path) -> None:
    removed = run_fleet("agent", "remove", "far")
    assert removed.exit_code == 0, removed.stderr
    rows = {row["agent"] for row in json.loads(run_fleet("ps", "--json").stdout)["agents"]}
    assert rows == {"near", "silent", "ghost"}


def test_an_unreachable_store_is_one_line_and_exit_6(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.servers import free_port

    url = f"postgresql+psycopg://fleet:secret@127.0.0.1:{free_port()}/fleet"
    monkeypatch.setenv("FLEET_DATABASE_URL", url)
    run = run_fleet("backlog", "stats")
    assert run.exit_code == 6, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fleet: the card store is not reachable")
    assert "secret" not in run.stderr


def test_send_to_an_agent_not_in_the_roster_is_not_found(home: Path) -> None:
    run = run_fleet("agent", "send", "nobody", "--message", "hello")
    assert run.exit_code == 3 and "unknown agent 'nobody'" in run.stderr
