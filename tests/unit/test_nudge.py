"""A nudge never holds up the change that caused it: a broker that is down gets one try."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fleet_queue.broker import broker_reachable
from fleet_queue.nudge import nudge_tick
from fleet_queue.settings import Settings


@contextmanager
def dropping_server(path: Path) -> Iterator[list[int]]:
    """A unix-socket server (where the embedded broker listens) that accepts each
    connection and closes it at once: a broker going away. Yields the connection count."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    listener.settimeout(0.2)
    accepted = [0]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted[0] += 1
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield accepted
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def test_nudge_to_a_broker_that_drops_connections_tries_once(tmp_path: Path) -> None:
    sock = tmp_path / "broker.sock"
    with dropping_server(sock) as accepted:
        settings = Settings(home=tmp_path, broker_url=f"redis+socket://{sock}")
        assert nudge_tick(settings, reason="created") is False
        assert accepted[0] == 1  # redis-py's default would retry 3 more times, with backoff
        assert broker_reachable(settings) is False
        assert accepted[0] == 2


def test_nudge_with_no_broker_at_all_is_false(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)  # the embedded broker, not started
    assert nudge_tick(settings, reason="created") is False
