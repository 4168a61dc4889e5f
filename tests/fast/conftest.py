"""Fast-tier fixtures: the in-process pipeline (no Celery process) on a real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.settings import Settings
from tests.support.pipeline import Pipeline, inprocess_pipeline
from tests.support.servers import RedisServer

QUIET = {"FLEET_NUDGE": "0"}
"""The stubs close cards with ``fleet card done``; nothing consumes a nudged tick here."""


def agent(name: str, cls: str = "implementer", **env: str) -> dict[str, Any]:
    return {"name": name, "runtime": "stub", "class": cls, "env": {**QUIET, **env}}


PipelineFactory = Callable[..., AbstractContextManager[Pipeline]]


@pytest.fixture
def make_pipeline(
    tmp_path: Path, redis_srv: RedisServer, settings: Settings, slowness: float
) -> Iterator[PipelineFactory]:
    """``make_pipeline(agents, **settings)``: a pipeline over these roster entries."""

    def make(agents: list[dict[str, Any]], **overrides: Any) -> AbstractContextManager[Pipeline]:
        roster = {"version": 1, "preset": "minimal", "agents": agents}
        return inprocess_pipeline(
            tmp_path / "fleet", redis_srv.url, settings.tmux_socket, roster,
            start_timeout=15 * slowness, **overrides,
        )  # fmt: skip

    yield make


@pytest.fixture
def pipeline(make_pipeline: PipelineFactory) -> Iterator[Pipeline]:
    """Two stub implementers that finish a card in 0.2 s."""
    with make_pipeline(
        [agent("a1", FLEET_STUB_WORK="0.2"), agent("a2", FLEET_STUB_WORK="0.2")]
    ) as pipe:
        yield pipe
