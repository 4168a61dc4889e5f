"""`fleet agent watch` is read-only: keys typed in the viewer never reach the agent,
the agent's window keeps its size, and the throwaway session goes away on detach."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios

from fleet_queue.settings import Settings
from tests.host.conftest import make_roster, messages_of, stub, wait_ready
from tests.support.poll import wait_until
from workers.delivery import Deliverer
from workers.sessions import start_agents
from workers.tmux import TmuxServer


def test_watch_cannot_type_and_never_resizes(host_settings: Settings) -> None:
    roster = make_roster(stub("a1"))
    (host_settings.home / "roster.yaml").write_text(roster.to_yaml())
    start_agents(host_settings, roster)
    wait_ready(host_settings, "a1")
    server = TmuxServer.for_fleet(host_settings, roster)
    size = server.run("display-message", "-p", "-t", "=a1:", "#{window_width}x#{window_height}")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 12, 40, 0, 0))
    env = {
        **os.environ,
        "FLEET_HOME": str(host_settings.home),
        "TERM": "xterm",
        "FLEET_TMUX_SOCKET": host_settings.tmux_socket,
        "FLEET_HOST": "testhost",
    }
    viewer = subprocess.Popen(
        [sys.executable, "-m", "fleet_queue", "agent", "watch", "a1"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        wait_until(
            lambda: server.run("list-clients", "-F", "#{client_readonly}") == ["1"],
            20,
            what="read-only watch client attached",
        )
        watchers = [s for s in server.session_names() if s.startswith("a1-watch-")]
        assert len(watchers) == 1
        os.write(master, b"typed-by-the-watcher\r")
        os.write(master, b"\x1b[200~pasted-by-the-watcher\x1b[201~\r")
        deliverer = Deliverer(host_settings, roster)
        try:
            deliverer.deliver("a1", "marker sent after the viewer typed", source="op", force=True)
        finally:
            deliverer.close()
        messages = messages_of(host_settings, "a1")
        wait_until(lambda: any("marker" in m for m in messages()), 10, what="marker")
        assert not any("watcher" in m for m in messages())
        assert (
            server.run("display-message", "-p", "-t", "=a1:", "#{window_width}x#{window_height}")
            == size
        )
        os.write(master, b"\x02d")  # prefix + d: detach, the one thing a read-only client may do
        assert viewer.wait(timeout=20) == 0
        assert not [s for s in server.session_names() if s.startswith("a1-watch-")]
        assert server.has_session("a1")
    finally:
        if viewer.poll() is None:
            viewer.kill()
            viewer.wait()
        os.close(master)
