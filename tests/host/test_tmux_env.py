"""The fleet's tmux server, and so every pane, inherits none of the worker's store or
broker secrets: a real server's global environment is read back with ``show-environment``."""

from __future__ import annotations

import pytest

from fleet_queue.settings import Settings
from workers.tmux import TmuxServer

STRIPPED = {
    "PGPASSWORD": "pg-secret-1",
    "PGPASSFILE": "/root/.pgpass",
    "REDISCLI_AUTH": "redis-secret-2",
    "FLOWER_BASIC_AUTH": "ops:flower-secret-3",
    "DB_PASS": "db-secret-4",
    "DATABASE_URL": "postgresql://fleet@db/fleet",
    "MY_STORE": "postgresql://fleet:url-secret-5@db/fleet",
    "CACHE": "redis://h/0?password=query-secret-6",
}
KEPT = {"ANTHROPIC_API_KEY": "sk-test-kept", "GITHUB_TOKEN": "gh-kept", "PLAIN_VALUE": "1"}


def test_store_and_broker_secrets_never_reach_the_tmux_server(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**STRIPPED, **KEPT}.items():
        monkeypatch.setenv(name, value)
    server = TmuxServer.for_fleet(settings)
    server.ensure_started()
    shown = "\n".join(server.run("show-environment", "-g"))
    for name, value in STRIPPED.items():
        assert f"{name}=" not in shown and value not in shown, name
    for name, value in KEPT.items():
        assert f"{name}={value}" in shown, name
    pane = "\n".join(server.run("show-environment", "-t", server.holder_session))
    assert "secret" not in pane
