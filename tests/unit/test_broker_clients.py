"""kombu's Redis channel keeps one client object: messages still go and come back."""

from __future__ import annotations

from typing import Any

from kombu.connection import Connection as _Connection

from fleet_queue.broker_clients import reuse_channel_clients
from tests.support.servers import RedisServer

Connection: Any = _Connection  # kombu is untyped


def test_a_channel_builds_one_client_and_its_messages_still_flow(redis_srv: RedisServer) -> None:
    reuse_channel_clients()
    reuse_channel_clients()  # idempotent: patched once
    with Connection(redis_srv.url) as conn:
        channel = conn.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        assert channel._create_client(asynchronous=True) is not first
        queue = conn.SimpleQueue("fleet-test-broker-clients")
        for n in range(3):
            queue.put({"n": n})
        got = []
        for _ in range(3):
            message = queue.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        assert got == [0, 1, 2]
        queue.close()
    with Connection(redis_srv.url) as other:  # a new channel gets a client of its own pool
        assert other.default_channel._create_client() is not first
