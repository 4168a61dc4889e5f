"""fleet ps rows: readiness flips on a killed pane or a silent heartbeat; drift; unmanaged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from fleet_queue.settings import Settings
from tests.host.conftest import make_roster, stub, wait_ready
from tests.support.poll import wait_until
from workers.delivery import Deliverer
from workers.heartbeat import read_heartbeat
from workers.probe import probe_agents, unmanaged_sessions
from workers.sessions import start_agents
from workers.tmux import TmuxServer


def _row(settings: Settings, roster: object, agent: str = "a1") -> dict[str, object]:
    rows = {p.agent: p.as_dict() for p in probe_agents(settings, roster)}  # type: ignore[arg-type]
    return rows[agent]


def test_killed_pane_is_dead_within_one_interval(host_settings: Settings) -> None:
    roster = make_roster(stub("a1"))
    pid = start_agents(host_settings, roster)[0].pid
    assert pid is not None
    wait_ready(host_settings, "a1")
    row = wait_until(lambda: (r := _row(host_settings, roster))["health"] and r, 10, what="healthy")
    assert row["pane_alive"] and row["pid"] == pid and row["drift"] is False
    assert row["readiness"] in ("working", "available")
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: _row(host_settings, roster)["readiness"] == "dead",
        host_settings.heartbeat_interval,
        interval=0.02,
        what="dead",
    )
    assert _row(host_settings, roster)["pane_alive"] is False


def test_silent_heartbeat_goes_stale(host_settings: Settings) -> None:
    roster = make_roster(stub("a1", env={"FLEET_STUB_MODE": "wedge"}))
    start_agents(host_settings, roster)
    wait_ready(host_settings, "a1")
    wait_until(
        lambda: _row(host_settings, roster)["readiness"] == "available",
        10,
        what="available once idle",
    )
    deliverer = Deliverer(host_settings, roster)
    try:
        deliverer.deliver("a1", "fleet card done C1 --token 1", source="op", verify=False)
    finally:
        deliverer.close()
    row = wait_until(
        lambda: (r := _row(host_settings, roster))["readiness"] == "stale" and r,
        3 * host_settings.heartbeat_interval + 5,
        what="stale",
    )
    assert row["pane_alive"] is True and row["health"] is False


def test_drift_and_unmanaged_sessions(host_settings: Settings) -> None:
    roster = make_roster(stub("a1"))
    start_agents(host_settings, roster)
    wait_ready(host_settings, "a1")
    server = TmuxServer.for_fleet(host_settings, roster)
    server.run("new-session", "-d", "-s", "intruder", "sleep", "600")
    assert unmanaged_sessions(host_settings, roster) == ["intruder"]
    wait_until(lambda: _row(host_settings, roster)["drift"] is False, 10, what="no drift")
    changed = make_roster(stub("a1") | {"runtime": "claude"})
    assert _row(host_settings, changed)["drift"] is True
    env = {
        **os.environ,
        "FLEET_HOME": str(host_settings.home),
        "FLEET_TMUX_SOCKET": host_settings.tmux_socket,
        "FLEET_HOST": "testhost",
    }
    (host_settings.home / "roster.yaml").write_text(changed.to_yaml())
    out = subprocess.run(
        [sys.executable, "-m", "fleet_queue", "ps", "--local", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    assert [a["agent"] for a in data["agents"]] == ["a1"]
    assert data["agents"][0]["drift"] is True and data["agents"][0]["tenant_id"] == "default"
    assert [u["session"] for u in data["unmanaged"]] == ["intruder"]
    assert data["unmanaged"][0]["pane_command"] == "sleep"


def test_sidecar_heartbeats_for_a_runtime_without_one(host_settings: Settings) -> None:
    roster = make_roster(
        {"name": "s1", "runtime": "plain", "class": "coder", "command": "sleep 600"}
    )
    pid = start_agents(host_settings, roster)[0].pid
    hb = wait_until(lambda: read_heartbeat(host_settings.run_dir, "s1"), 10, what="sidecar beat")
    assert hb.pid == pid and hb.status == "ok"
    assert _row(host_settings, roster, "s1")["health"] is True
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _row(host_settings, roster, "s1")["readiness"] == "dead", 5, what="dead")
    wait_until(
        lambda: (
            not (host_settings.run_dir / "s1.sidecar.pid").exists() or not _alive(host_settings)
        ),
        10,
        what="sidecar exits",
    )


def _alive(settings: Settings) -> bool:
    from workers.sidecar import running_sidecar

    return running_sidecar(settings.run_dir, "s1") is not None
