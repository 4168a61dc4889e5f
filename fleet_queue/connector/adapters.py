"""Which adapter serves a roster's chat network.

Each network lives in its own module, ``fleet_queue.connector.<kind>``, with a
``build(config, settings)`` that returns its ``ChatAdapter``; the module (and its
network's library) is imported only when that network is served, so a fleet on Matrix
never loads discord.py.
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast

from fleet_queue.connector.base import ChatAdapter
from fleet_queue.connector.config import NETWORKS, ChatConfig
from fleet_queue.errors import ConfigError
from fleet_queue.settings import Settings


class _AdapterModule(Protocol):
    def build(self, config: ChatConfig, settings: Settings) -> ChatAdapter: ...


def build_adapter(config: ChatConfig, settings: Settings) -> ChatAdapter:
    """The adapter for ``config.kind``; a ``ConfigError`` in one line if there is none or
    its library is not installed (the ``chat`` extra)."""
    if config.kind not in NETWORKS:
        raise ConfigError(f"roster connector.kind: {config.kind!r} has no adapter")
    try:  # an adapter may import its network's library only when it is built
        found = importlib.import_module(f"fleet_queue.connector.{config.kind}")
        return cast(_AdapterModule, found).build(config, settings)
    except ImportError as exc:
        raise ConfigError(
            f"the {config.kind} connector cannot load ({exc}); install fleet-queue[chat]"
        ) from None
