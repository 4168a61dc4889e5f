"""Sessions on the private socket: idempotent start/stop, verify, the default server untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_queue.errors import HostError
from fleet_queue.settings import Settings
from tests.host.conftest import make_roster, stub, wait_ready
from tests.support.poll import wait_until
from workers.sessions import start_agents, stop_agents, verify
from workers.tmux import TmuxServer, pane_target


def _default_server_state() -> tuple[bool, str]:
    """Whether the operator's default tmux socket exists, and its sessions."""
    base = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}" / "default"
    if not base.exists():
        return False, ""
    proc = subprocess.run(
        ["tmux", "-S", str(base), "ls"], capture_output=True, text=True, check=False
    )
    return True, proc.stdout


def test_start_stop_idempotent_and_default_server_untouched(host_settings: Settings) -> None:
    before = _default_server_state()
    roster = make_roster(stub("a1"), stub("a2"))
    first = start_agents(host_settings, roster)
    assert [r.action for r in first] == ["started", "started"]
    again = start_agents(host_settings, roster)
    assert [r.action for r in again] == ["running", "running"]
    assert [r.pid for r in again] == [r.pid for r in first]
    server = TmuxServer.for_fleet(host_settings, roster)
    assert server.socket_dir.stat().st_mode & 0o777 == 0o700
    assert set(server.session_names()) == {"_holder", "a1", "a2"}
    assert verify(host_settings, roster).ok
    assert [r.action for r in stop_agents(host_settings, roster)] == ["stopped", "stopped"]
    assert not server.is_running()
    assert [r.action for r in stop_agents(host_settings, roster)] == ["absent", "absent"]
    assert _default_server_state() == before


def test_verify_names_missing_session(host_settings: Settings) -> None:
    roster = make_roster(stub("a1"), stub("a2"))
    start_agents(host_settings, roster)
    TmuxServer.for_fleet(host_settings, roster).run("kill-session", "-t", "=a2")
    report = verify(host_settings, roster)
    assert not report.ok and report.missing == ["a2"]
    env = {
        **os.environ,
        "FLEET_HOME": str(host_settings.home),
        "FLEET_TMUX_SOCKET": host_settings.tmux_socket,
        "FLEET_HOST": "testhost",
    }
    (host_settings.home / "roster.yaml").write_text(roster.to_yaml())
    proc = subprocess.run(
        [sys.executable, "-m", "fleet_queue", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "missing sessions: a2" in proc.stderr


def test_missing_runtime_binary_is_a_clear_error(host_settings: Settings) -> None:
    roster = make_roster(
        {
            "name": "c1",
            "runtime": "claude",
            "class": "coder",
            "command": "no-such-binary-fq42 --flag",
        }
    )
    with pytest.raises(HostError, match=r"agent 'c1'.*'no-such-binary-fq42' not found"):
        start_agents(host_settings, roster)
    assert not TmuxServer.for_fleet(host_settings, roster).is_running()


def test_start_respawns_a_dead_pane(host_settings: Settings) -> None:
    roster = make_roster(stub("a1"))
    pid = start_agents(host_settings, roster)[0].pid
    assert pid is not None
    wait_ready(host_settings, "a1")
    os.kill(pid, signal.SIGKILL)
    server = TmuxServer.for_fleet(host_settings, roster)
    wait_until(
        lambda: (
            server.run("display-message", "-p", "-t", pane_target("a1"), "#{pane_dead}") == ["1"]
        ),
        10,
        what="pane dead",
    )
    result = start_agents(host_settings, roster)[0]
    assert result.action == "respawned" and result.pid != pid


def test_pane_environment_has_identity_but_no_password(host_settings: Settings) -> None:
    settings = host_settings.model_copy(
        update={"database_url": "postgresql://u:s3cret@db/fleet", "broker_url": "redis://r:6379/0"}
    )
    roster = make_roster(
        {
            "name": "e1",
            "runtime": "env",
            "class": "coder",
            "command": "sleep 600",
            "env": {"EXTRA": "${HOME}"},
        }
    )
    start_agents(settings, roster)
    server = TmuxServer.for_fleet(settings, roster)
    pid = server.run("display-message", "-p", "-t", pane_target("e1"), "#{pane_pid}")[0]
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
        if "=" in item
    )
    assert environ["FLEET_AGENT"] == "e1"
    assert environ["FLEET_HOST"] == "testhost"
    assert environ["FLEET_TENANT"] == "default"
    assert environ["FLEET_TMUX_SOCKET"] == settings.tmux_socket
    assert environ["FLEET_HOME"] == str(settings.home)
    assert environ["EXTRA"] == os.environ["HOME"]
    assert environ["FLEET_BROKER_URL"] == "redis://r:6379/0"
    assert "FLEET_DATABASE_URL" not in environ
    assert not any("s3cret" in value for value in environ.values())


def test_no_names_means_this_host_and_tenant_like_fleet_up(host_settings: Settings) -> None:
    from workers.sessions import local_agents, restart_agents

    roster = make_roster(
        stub("a1"),
        stub("a2", tenant_id="default", host="testhost"),
        stub("o1", tenant_id="other"),  # this host, another tenant: not ours to run
        stub("r1", host="elsewhere"),  # our tenant, another host
    )
    ours = ["a1", "a2"]
    assert [a.name for a in local_agents(host_settings, roster)] == ours  # what `fleet up` runs
    assert [r.agent for r in start_agents(host_settings, roster)] == ours
    server = TmuxServer.for_fleet(host_settings, roster)
    assert set(server.session_names()) == {"_holder", *ours}
    report = verify(host_settings, roster)
    assert report.ok and report.missing == [], report
    assert [r.agent for r in restart_agents(host_settings, roster)] == ours
    assert [r.agent for r in stop_agents(host_settings, roster)] == ours
    assert not server.is_running()

    # The CLI verbs choose the same way: for FLEET_TENANT=other, its agent and the agent
    # with no tenant (unset means whichever tenant runs it), never a2 of tenant default.
    (host_settings.home / "roster.yaml").write_text(roster.to_yaml())
    env = {
        **os.environ,
        "FLEET_HOME": str(host_settings.home),
        "FLEET_TMUX_SOCKET": host_settings.tmux_socket,
        "FLEET_HOST": "testhost",
        "FLEET_TENANT": "other",
    }
    for verb, expected in (("start", ["a1", "o1"]), ("verify", None), ("stop", ["a1", "o1"])):
        proc = subprocess.run(
            [sys.executable, "-m", "fleet_queue", verb, *(["--json"] if expected else [])],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        if expected:
            assert [row["agent"] for row in json.loads(proc.stdout)] == expected
