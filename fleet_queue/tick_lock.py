"""The tenant's tick lock: one supervisor tick at a time, and no tick asked for is lost.

A tick that finds the lock taken does not wait: it asks the running tick to go round
again (the ``tick-rerun`` key) and ends. Each step is one Lua script, so it is atomic in
Redis and one round trip: taking the lock (or asking for a rerun) also clears the nudge
debounce key, so later nudges queue a new tick; ending a round either renews the lock for
another round, when a rerun was asked for, or releases it. A rerun asked for just after
a release cannot be lost either: the asker then finds the lock free and takes it itself.
(The tick used to spend five round trips on this, a fifth of its Redis traffic per card.)
"""

from __future__ import annotations

import uuid
from typing import Literal

import redis

from fleet_queue.nudge import NUDGE_KEY
from fleet_queue.queues import redis_key

TAKE = """
redis.call('DEL', KEYS[2])
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[3])
  return 1
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return 0
"""

ROUND_DONE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
if ARGV[3] == '0' and redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
redis.call('DEL', KEYS[1])
return 0
"""

RoundEnd = Literal["again", "released", "lost"]
_ENDS: dict[int, RoundEnd] = {1: "again", 0: "released", -1: "lost"}


class TickLock:
    """One tick's hold on its tenant's lock (a token of its own, like redis-py's ``Lock``)."""

    def __init__(self, client: redis.Redis, tenant: str, seconds: float) -> None:
        self.client = client
        self.lock = redis_key(tenant, "tick-lock")
        self.nudge = redis_key(tenant, NUDGE_KEY)
        self.rerun = redis_key(tenant, "tick-rerun")
        self.token = uuid.uuid4().hex
        self.ms = max(int(seconds * 1000), 1)

    def take(self) -> bool:
        """True: this tick holds the lock. False: another does, and will go round again."""
        keys = [self.lock, self.nudge, self.rerun]
        return bool(self.client.register_script(TAKE)(keys=keys, args=[self.token, self.ms]))

    def round_done(self, *, stop: bool = False) -> RoundEnd:
        """After a round: ``again`` (a rerun was asked for; the lock renewed), ``released``,
        or ``lost`` (the lock ran out during the round and may be another tick's).
        ``stop``: release whatever was asked (a paused fleet, a failed round)."""
        script = self.client.register_script(ROUND_DONE)
        args: list[str | int] = [self.token, self.ms, "1" if stop else "0"]
        return _ENDS[int(script(keys=[self.lock, self.rerun], args=args))]
