"""One redis-py client object per kombu channel, instead of one per broker command.

kombu's Redis transport builds a new ``redis.Redis`` for every publish, ack and queue
operation (``Channel.conn_or_acquire``): the connections come from the channel's pool,
but the client object itself costs about 0.1 ms of CPU to build (redis-py 8 fills a
table of response callbacks each time). A card is a dozen such commands in the host
worker (two task messages, their acks, the task events), so this was about a tenth of
its CPU per card (docs/benchmarks.md). A ``redis.Redis`` on a connection pool is safe
to share between threads (every command checks a connection out of the pool), so each
channel keeps the first one it builds. The asynchronous client (the consumer's
``BRPOP``) is already kept by kombu and is left alone.
"""

from __future__ import annotations

import threading
from typing import Any

_done = threading.Lock()
_patched = False
ATTR = "_fleet_sync_client"


def reuse_channel_clients() -> None:
    """Patch kombu's Redis channel once per process; idempotent."""
    global _patched
    with _done:
        if _patched:
            return
        from kombu.transport import redis as transport

        build: Any = transport.Channel._create_client

        def create_client(self: Any, asynchronous: bool = False) -> Any:
            if asynchronous:
                return build(self, asynchronous=True)
            client = self.__dict__.get(ATTR)
            if client is None or client.connection_pool is not self.pool:
                client = build(self)
                self.__dict__[ATTR] = client
            return client

        setattr(transport.Channel, "_create_client", create_client)  # noqa: B010
        _patched = True
