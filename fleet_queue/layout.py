"""Where fleet-queue keeps things under ``FLEET_HOME``: plain strings, standard library only.

Two readers need the same answers and must not drift apart: the settings (pydantic),
and the fast close path of ``fleet card done`` (``fleet_queue.fast_close``), which finds
the host worker's agent socket before anything heavier than ``socket`` and ``json`` is
imported. Both take their defaults from here.
"""

from __future__ import annotations

import os

DEFAULT_HOME = "~/.config/fleet-queue"
"""``FLEET_HOME`` when unset."""
DEFAULT_TENANT = "default"
"""``FLEET_TENANT`` when unset."""
RUN_DIR = "run"
"""Heartbeats, the PAUSED flag and sockets: ``FLEET_HOME/run``."""
AGENT_SOCKET_DIR = "agent-sockets"
"""``run/agent-sockets/<tenant>.sock``: one host worker's socket per tenant (0700 dir)."""
CONSOLE_TOKEN_FILE = "console.token"
"""In ``FLEET_HOME/run``: the web console's login token, written at its start unless
FLEET_BOARD_AUTH is set (``fleet up --board`` shows the login link from it)."""
MAX_SOCKET_PATH = 104
"""sun_path is 108 bytes on Linux and 104 on macOS; stay under both."""


def agent_socket_path(home: str, tenant: str) -> str:
    """The unix socket a host worker of ``tenant`` serves its agents' closes on.

    Its own directory, not ``run/<tenant>``: a tenant may be called ``PAUSED`` or
    ``tmux-1000``, names that ``run/`` already uses.
    """
    return os.path.join(home, RUN_DIR, AGENT_SOCKET_DIR, f"{tenant}.sock")
