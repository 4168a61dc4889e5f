"""``fleet up``, ``fleet up -d``, ``fleet down`` and ``fleet demo`` as an operator runs them:
real processes (embedded redis-server, Celery worker and beat, stub agents in tmux).

What they must do: bring back whatever of their own dies (broker, worker, beat) so a
new card still completes, and leave nothing behind when stopped — no process naming
the fleet's home, no tmux server, no socket, no pid file.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.composition import open_card_store
from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import Settings
from fleet_queue.up_state import pid_path, read_state, running_up, state_path
from tests.support.fleet import stub_roster
from tests.support.poll import wait_until
from tests.support.procs import processes_naming, unix_sockets_naming
from tests.support.servers import free_port
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TEAM = [("a0", "implementer"), ("a1", "implementer")]


def fleet_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(
        {
            "FLEET_HOME": str(settings.home),
            "FLEET_HOST": settings.host,
            "FLEET_TMUX_SOCKET": settings.tmux_socket,
            "FLEET_HEARTBEAT_INTERVAL": "0.5",
            "FLEET_HOST_STATUS_INTERVAL": "0.5",
            "FLEET_TICK_INTERVAL": "1",
            "FLEET_RECLAIM_INTERVAL": "1",
        }
    )
    return env


def fleet(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet_queue", *args],
        env=fleet_env(settings),
        capture_output=True,
        text=True,
        timeout=scaled(150),
    )


@pytest.fixture
def home(settings: Settings) -> Settings:
    roster = parse_roster(stub_roster(TEAM, env={"FLEET_STUB_WORK": "0.1"}), "test roster")
    write_roster(roster, settings.effective_roster_path)
    return settings


@pytest.fixture
def foreground_up(home: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """``fleet up`` in the foreground (no terminal: one line per change), until it runs."""
    out = (home.home / "up.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_queue", "up"],
        env=fleet_env(home),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    try:
        wait_until(
            lambda: phase(home) == "running" or proc.poll() is not None,
            timeout=scaled(90),
            what="fleet up to run",
        )
        assert proc.poll() is None, (home.home / "up.out").read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=scaled(120))


def phase(settings: Settings) -> str | None:
    state = read_state(settings)
    return None if state is None else state.get("phase")


def child(settings: Settings, name: str) -> dict[str, Any]:
    state = read_state(settings)
    assert state is not None, "no fleet up runs"
    return next(row for row in state["children"] if row["name"] == name)


def completes(settings: Settings, card_id: str) -> None:
    store = open_card_store(settings)
    try:
        from fleet_queue.cards import NewCard

        store.create(NewCard(id=card_id, title=f"card {card_id}"))
        wait_until(
            lambda: store.get(card_id).status == "done",
            timeout=scaled(60),
            what=f"{card_id} to be done",
        )
    finally:
        store.close()


def kill_and_wait_restart(settings: Settings, name: str) -> dict[str, Any]:
    before = child(settings, name)
    os.kill(before["pid"], signal.SIGKILL)

    def back() -> dict[str, Any] | None:
        row = child(settings, name)
        ok = row["state"] == "running" and row["pid"] not in (None, before["pid"])
        return row if ok and row["restarts"] == before["restarts"] + 1 else None

    return wait_until(back, timeout=scaled(60), what=f"{name} to be restarted")


def assert_nothing_left(settings: Settings) -> None:
    """No process or socket of this home, no pid file: what every way of stopping must leave."""
    wait_until(
        lambda: not processes_naming(settings.home),
        timeout=scaled(15),
        what=f"no process left: {processes_naming(settings.home)}",
    )
    assert unix_sockets_naming(settings.home) == []
    assert not pid_path(settings).exists() and not state_path(settings).exists()
    assert running_up(settings) is None


def test_up_brings_back_its_broker_worker_and_beat_and_ctrl_c_leaves_nothing(
    home: Settings, foreground_up: subprocess.Popen[bytes]
) -> None:
    assert {r["name"]: r["state"] for r in read_state(home)["children"]} == {  # type: ignore[index]
        "broker": "running",
        "worker": "running",
        "beat": "running",
    }
    completes(home, "first")

    broker = kill_and_wait_restart(home, "broker")
    assert broker["restarts"] == 1
    completes(home, "after-broker")  # the worker reconnected (or was restarted) and delivers

    kill_and_wait_restart(home, "worker")
    completes(home, "after-worker")

    beat = kill_and_wait_restart(home, "beat")
    # the dead beat's lock was freed: the new beat is not refused and stays up
    time.sleep(scaled(3))
    assert child(home, "beat")["pid"] == beat["pid"]

    added = fleet(home, "agent", "add", "late", "--runtime", "stub", "--class", "implementer")
    assert added.returncode == 0, added.stderr

    foreground_up.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert foreground_up.wait(timeout=scaled(120)) == 0
    assert_nothing_left(home)  # the agent added at run time too
    worker_log = (home.home / "logs" / "worker.log").read_text()
    assert "Warm shutdown" in worker_log.rsplit("after-worker", 1)[-1]
    ps = json.loads(fleet(home, "ps", "--json").stdout)
    assert {a["agent"]: a["readiness"] for a in ps["agents"]} == {
        "a0": "stopped",
        "a1": "stopped",
        "late": "stopped",
    }


def test_detached_up_then_down_leaves_nothing_and_doctor_sees_the_broker_down_under_up(
    home: Settings,
) -> None:
    started = fleet(home, "up", "-d", "--json")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        state = json.loads(started.stdout)
        assert state["phase"] == "running" and running_up(home) == state["pid"]
        assert (pid_path(home).stat().st_mode & 0o777) == 0o600
        assert (home.home / "logs" / "up.log").exists()

        again = fleet(home, "up", "-d")
        assert again.returncode == 4 and again.stderr.count("\n") == 1, again.stderr
        assert "already runs" in again.stderr

        # hold the supervisor still so the broker stays down while the doctor looks
        os.kill(state["pid"], signal.SIGSTOP)
        try:
            os.kill(child(home, "broker")["pid"], signal.SIGKILL)
            time.sleep(0.5)
            doctor = json.loads(fleet(home, "doctor", "--json").stdout)
        finally:
            os.kill(state["pid"], signal.SIGCONT)
        check = next(c for c in doctor["checks"] if c["name"] == "broker")
        assert check["level"] == "fail"
        assert "running fleet up" in check["detail"], check
        assert "fleet up (it starts" not in check["hint"], check
        wait_until(lambda: child(home, "broker")["state"] == "running", timeout=scaled(30))
    finally:
        down = fleet(home, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert_nothing_left(home)
    again = fleet(home, "down")
    assert again.returncode == 0 and "no fleet up was running" in again.stdout
    ps = json.loads(fleet(home, "ps", "--json").stdout)
    assert {a["readiness"] for a in ps["agents"]} == {"stopped"}


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A short TMPDIR: the demo's home and tmux socket path must fit in sun_path."""
    path = Path(tempfile.mkdtemp(prefix="fqd", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_demo_twice_in_a_row_leaves_no_process_tmux_server_or_socket(scratch: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env["TMPDIR"] = str(scratch)  # the demo's throwaway home is made here
    assert processes_naming(scratch) == []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "fleet_queue", "demo", "--json", "--work", "0.1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(200),
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert json.loads(done.stdout)["ok"] is True
        # panes get SIGHUP as the tmux server goes: allow them their moment to exit
        wait_until(
            lambda: not processes_naming(scratch),
            timeout=scaled(5),
            what=f"no process of the demo left: {processes_naming(scratch)}",
        )
        assert unix_sockets_naming(scratch) == []
        assert list(scratch.iterdir()) == []  # its home, pid file and lock went with it


def test_a_killed_up_takes_its_children_with_it_and_down_stops_the_agents(
    home: Settings, foreground_up: subprocess.Popen[bytes]
) -> None:
    state = read_state(home)
    assert state is not None
    pids = [row["pid"] for row in state["children"]]
    foreground_up.kill()  # SIGKILL: no clean-up of its own runs
    foreground_up.wait()

    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() for pid in pids)

    wait_until(gone, timeout=scaled(30), what="worker, beat and broker to end with their up")
    assert running_up(home) is None  # the lock died with it
    down = fleet(home, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no fleet up was running" in down.stdout
    assert_nothing_left(home)  # its stale pid and state files too


def test_detached_up_with_a_board_shows_the_board_login_link(home: Settings) -> None:
    """The console writes its token at start and prints the link only to its own log:
    ``fleet up --board`` shows the link, and the link logs a browser in."""
    port = free_port()
    started = fleet(home, "up", "-d", "--board", str(port), "--json")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        token_file = home.run_dir / "console.token"
        wait_until(token_file.exists, timeout=scaled(60), what="the console's token")
        token = token_file.read_text(encoding="utf-8").strip()
        link = f"http://127.0.0.1:{port}/login?token={token}"
        wait_until(
            lambda: child(home, "board").get("url") == link,
            timeout=scaled(30),
            what="the login link in fleet up's state",
        )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(10))
        try:
            conn.request("GET", f"/login?token={token}")
            reply = conn.getresponse()
            assert (reply.status, reply.getheader("location")) == (303, "/")
            assert "fleet_console=" in (reply.getheader("set-cookie") or "")
        finally:
            conn.close()
    finally:
        down = fleet(home, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert_nothing_left(home)
