"""The main processes the systemd units run, run for real without systemd.

A real user manager cannot run here (``systemd --user`` exits at once in this sandbox),
so the units are checked by ``systemd-analyze verify`` (test_systemd.py) and what
their ``ExecStart=`` runs is checked here: ``fleet start --wait NAME`` lives exactly as
long as the agent's pane (what lets ``Restart=on-failure`` bring the agent back), and
``fleet broker`` is the embedded redis-server itself, ended by the SIGTERM systemd sends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from fleet_queue.broker import broker_reachable
from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import Settings
from tests.support.fleet import stub_roster
from tests.support.poll import wait_until
from workers.pane_wait import WAIT_INTERVAL, pane_process
from workers.tmux import TmuxServer

pytestmark = pytest.mark.timeout(120)


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(
        {
            "FLEET_HOME": str(settings.home),
            "FLEET_HOST": settings.host,
            "FLEET_TMUX_SOCKET": settings.tmux_socket,
            **extra,
        }
    )
    return env


def fleet(settings: Settings, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fleet_queue", *args],
        env=env_of(settings, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_start_wait_lives_as_long_as_the_pane_and_exits_1_when_it_dies(
    settings: Settings,
) -> None:
    roster = parse_roster(stub_roster([("a0", "implementer")]), "test roster")
    write_roster(roster, settings.effective_roster_path)
    unit_main = fleet(settings, "start", "--wait", "a0")
    try:
        server = TmuxServer.for_fleet(settings, roster)
        pid = wait_until(lambda: pane_process(server, "a0"), timeout=30, what="a0's pane")
        time.sleep(WAIT_INTERVAL + 0.5)  # one round of its check at least
        assert unit_main.poll() is None  # the agent lives: so does the unit's main process
        os.kill(pid, signal.SIGKILL)
        _, stderr = unit_main.communicate(timeout=30)
    finally:
        if unit_main.poll() is None:
            unit_main.kill()
    assert unit_main.returncode == 1
    assert stderr.strip().splitlines()[-1].startswith("fleet: agent a0:"), stderr


def test_start_wait_takes_exactly_one_agent(settings: Settings) -> None:
    roster = parse_roster(stub_roster([("a0", "implementer")]), "test roster")
    write_roster(roster, settings.effective_roster_path)
    done = fleet(settings, "start", "--wait")
    _, stderr = done.communicate(timeout=60)
    assert done.returncode == 2 and stderr.strip() == "fleet: --wait takes exactly one agent"


def test_fleet_broker_is_the_embedded_redis_and_stops_on_sigterm(settings: Settings) -> None:
    broker = fleet(settings, "broker")
    try:
        wait_until(lambda: broker_reachable(settings), timeout=30, what="the embedded broker")
        second = fleet(settings, "broker")
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 4 and "already runs" in stderr
        with open(f"/proc/{broker.pid}/cmdline", "rb") as cmdline:
            assert b"redis-server" in cmdline.read()  # exec'd: systemd's signals reach redis
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(timeout=30) == 0
    finally:
        if broker.poll() is None:
            broker.kill()
    assert not broker_reachable(settings)
    external = fleet(settings, "broker", FLEET_BROKER_URL="redis://127.0.0.1:1/0")
    _, stderr = external.communicate(timeout=60)
    assert external.returncode == 2 and "external" in stderr
