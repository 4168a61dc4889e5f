"""``fleet agent brief``: what an agent is told about itself and its team, and that it is true."""

from __future__ import annotations

import json
import shlex

import pytest

from fleet_queue.roster import write_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.host.conftest import make_roster, messages_of, stub, wait_ready
from tests.support.cli import run_fleet
from tests.support.poll import wait_until
from workers.sessions import start_agents


@pytest.fixture(autouse=True)
def _cli_sees_this_host(host_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fleet`` run in-process reads the test's socket and host from the environment."""
    monkeypatch.setenv("FLEET_TMUX_SOCKET", host_settings.tmux_socket)
    monkeypatch.setenv("FLEET_HOST", host_settings.host)


def team(settings: Settings) -> None:
    roster = make_roster(
        stub("lead", **{"class": "orchestrator"}),
        stub("fixer", reports_to="lead"),
        stub("checker", **{"class": "reviewer", "reports_to": "lead", "host": "elsewhere"}),
    )
    write_roster(roster, settings.effective_roster_path)


def test_brief_names_role_team_and_peers(host_settings: Settings) -> None:
    team(host_settings)
    run = run_fleet("agent", "brief", "lead", "--json")
    assert run.exit_code == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["role"] == "orchestrator" and data["reports_to"] is None
    assert data["reports"] == ["fixer", "checker"]
    assert {(p["name"], p["host"]) for p in data["peers"]} == {
        ("fixer", "testhost"),
        ("checker", "elsewhere"),
    }
    text = run_fleet("agent", "brief", "fixer").stdout
    assert "You are fixer (coder) on host testhost" in text
    assert "fleet roles show code" in text and "You report to lead." in text
    assert "checker (reviewer, host elsewhere, another host: use a card)" in text
    assert "Message a peer on another host: a card targeted at it" in text


def test_the_hand_off_commands_in_the_brief_work(host_settings: Settings) -> None:
    team(host_settings)
    lines = run_fleet("agent", "brief", "fixer").stdout.splitlines()
    handoffs = [line.strip() for line in lines if "fleet backlog create" in line]
    assert len(handoffs) == 2
    filled = {
        "<ID>": "H1",
        "<what>": "review my change",
        "<peer>": "checker",
        "<class>": "reviewer",
    }
    for n, line in enumerate(handoffs):
        for placeholder, value in filled.items():
            line = line.replace(placeholder, value)
        argv = shlex.split(line)[1:]  # drop "fleet"
        argv[argv.index("H1")] = f"H{n}"
        created = run_fleet(*argv)
        assert created.exit_code == 0, created.stderr
    with CardStore(host_settings.effective_database_url, tenant=host_settings.tenant) as store:
        assert store.get("H0").target_agent == "checker"
        assert store.get("H1").target_class == "reviewer"


def test_unknown_agent_is_one_line_exit_3(host_settings: Settings) -> None:
    team(host_settings)
    run = run_fleet("agent", "brief", "nobody")
    assert run.exit_code == 3 and run.stdout == ""
    assert run.stderr == "fleet: unknown agent 'nobody' (not in the roster)\n"


def test_send_types_the_brief_into_the_pane(host_settings: Settings) -> None:
    team(host_settings)
    roster = make_roster(
        stub("lead", **{"class": "orchestrator"}), stub("fixer", reports_to="lead")
    )
    write_roster(roster, host_settings.effective_roster_path)
    start_agents(host_settings, roster, ["fixer"])
    wait_ready(host_settings, "fixer")
    run = run_fleet("agent", "brief", "fixer", "--send", "--force", "--json")
    assert run.exit_code == 0, run.stderr
    sent = json.loads(run.stdout)["sent"]
    assert sent["verified"] is True
    got = wait_until(lambda: messages_of(host_settings, "fixer")(), 15, what="the brief")
    assert got[0].startswith(f"[from testhost:operator #{sent['nonce']}] You are fixer (coder)")
    assert "fleet card done ID --token N" in got[0]
