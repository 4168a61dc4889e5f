"""What every command that serves in the foreground shares: stop on a signal, and
a web UI without a login on loopback only (``fleet up``, ``fleet flower``, the board)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from pydantic import SecretStr

from fleet_queue.errors import UsageError
from fleet_queue.settings import reveal

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def refuse_open_bind(
    what: str, address: str, auth: SecretStr | str | None, auth_variable: str
) -> None:
    """A web UI without a login listens on loopback only: refuse any other address."""
    if not reveal(auth) and address not in LOOPBACK:
        raise UsageError(
            f"refusing to serve {what} on {address} without auth: set {auth_variable}=user:password"
        )


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, handlers restored afterwards."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
