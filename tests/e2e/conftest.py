"""End-to-end fixtures: a fresh Redis keyspace and a running stub fleet per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fleet_queue.settings import Settings
from tests.support.fleet import Fleet, fleet_settings, running_fleet, stub_roster
from tests.support.servers import RedisServer

TEAM = [
    ("lead", "orchestrator"),
    ("enh", "enhancer"),
    ("c0", "implementer"),
    ("c1", "implementer"),
    ("rev", "reviewer"),
]


@pytest.fixture
def broker(redis_srv: RedisServer) -> RedisServer:
    redis.Redis.from_url(redis_srv.url).flushall()
    return redis_srv


@pytest.fixture
def e2e_settings(tmp_path: Path, broker: RedisServer, settings: Settings) -> Settings:
    return fleet_settings(tmp_path / "fleet", broker.url, settings.tmux_socket)


@pytest.fixture
def team(e2e_settings: Settings) -> Iterator[Fleet]:
    with running_fleet(e2e_settings, stub_roster(TEAM, env={"FLEET_STUB_WORK": "0.2"})) as fleet:
        yield fleet
