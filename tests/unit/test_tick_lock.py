"""The tick lock on a real Redis: one tick at a time, and no tick asked for is lost.

Two ``TickLock`` objects are two ticks of one tenant (two host workers); every step is
what ``tick_once`` does, in the interleavings that used to need a trailing check.
"""

from __future__ import annotations

import time
import uuid

import redis

from fleet_queue.tick_lock import TickLock
from tests.support.servers import RedisServer


def pair(redis_srv: RedisServer, seconds: float = 10.0) -> tuple[redis.Redis, TickLock, TickLock]:
    client = redis.Redis.from_url(redis_srv.url)
    tenant = f"t{uuid.uuid4().hex[:8]}"
    return client, TickLock(client, tenant, seconds), TickLock(client, tenant, seconds)


def test_a_tick_that_finds_the_lock_taken_makes_the_holder_go_round_again(
    redis_srv: RedisServer,
) -> None:
    client, first, second = pair(redis_srv)
    client.set(first.nudge, "created")
    assert first.take()
    assert not client.exists(first.nudge), "later nudges must queue a new tick"
    client.set(first.nudge, "done")  # a nudge while the tick runs: its tick finds the lock
    assert not second.take()
    assert not client.exists(first.nudge)
    assert first.round_done() == "again"  # the asked-for round, under a renewed lock
    assert first.round_done() == "released"  # nothing asked since
    assert second.take(), "a released lock is free"
    assert second.round_done() == "released"


def test_a_stopped_tick_releases_whatever_was_asked_and_the_next_one_runs(
    redis_srv: RedisServer,
) -> None:
    client, first, second = pair(redis_srv)
    assert first.take()
    assert not second.take()
    assert first.round_done(stop=True) == "released"  # a paused fleet: no second round
    assert second.take()
    assert not client.exists(second.rerun), "the new holder's round sees every request"


def test_a_tick_whose_lock_ran_out_stops_and_leaves_the_new_holder_alone(
    redis_srv: RedisServer,
) -> None:
    client, first, second = pair(redis_srv, seconds=0.2)
    assert first.take()
    time.sleep(0.5)  # PX is Redis's own clock: past 0.2 s the key is gone
    assert second.take()
    assert first.round_done() == "lost"
    assert client.get(second.lock) == second.token.encode(), "not released by the old tick"
    assert second.round_done() == "released"
