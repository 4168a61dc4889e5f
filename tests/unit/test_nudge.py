"""A nudge never holds up the change that caused it: a broker that is down gets one try."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from fleet_queue.broker import broker_reachable
from fleet_queue.nudge import nudge_tick
from fleet_queue.settings import Settings
from tests.support.poll import wait_until


@contextmanager
def full_broker(sock: Path) -> Iterator[redis.Redis]:
    """A real redis-server on a unix socket (where the embedded broker listens) that takes
    one client, held here: every other connection is turned away and counted by Redis."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (apt-get install redis-server)"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--maxclients", "1", "--save", "",
         "--dir", str(sock.parent)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(sock.exists, 15, what="redis-server socket")
        admin = redis.Redis(unix_socket_path=str(sock))
        admin.ping()
        yield admin
    finally:
        proc.terminate()
        proc.wait(10)


def rejected(admin: redis.Redis) -> int:
    return int(admin.info("stats")["rejected_connections"])


def test_nudge_to_a_broker_that_turns_it_away_tries_once(tmp_path: Path) -> None:
    sock = tmp_path / "broker.sock"
    with full_broker(sock) as admin:
        settings = Settings(home=tmp_path, broker_url=f"redis+socket://{sock}")
        assert nudge_tick(settings, reason="created") is False
        assert rejected(admin) == 1  # redis-py's default retries the connection, with backoff
        assert broker_reachable(settings) is False
        assert rejected(admin) == 2


def test_nudge_with_no_broker_at_all_is_false(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)  # the embedded broker, not started
    assert nudge_tick(settings, reason="created") is False
