from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet_queue.cli import app
from fleet_queue.errors import ConfigError
from fleet_queue.settings import Settings, load_settings, mask_url


def test_defaults_follow_home(fleet_home):  # type: ignore[no-untyped-def]
    settings = load_settings()
    assert settings.home == fleet_home
    assert settings.effective_database_url == f"sqlite:///{fleet_home / 'fleet.db'}"
    assert settings.broker_is_embedded
    assert settings.effective_broker_url.startswith("redis+socket://")
    assert settings.tmux_socket == "fleet"
    assert settings.tenant == "default"


def test_mask_url_hides_password_only() -> None:
    assert mask_url("redis://u:s3cret@h:6379/0") == "redis://u:***@h:6379/0"
    assert mask_url("postgresql://app:pw@db/fleet") == "postgresql://app:***@db/fleet"
    assert mask_url("redis://:pw@h/1") == "redis://:***@h/1"
    assert mask_url("sqlite:////x/fleet.db") == "sqlite:////x/fleet.db"


def test_config_json_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_BROKER_URL", "rediss://fleet:hunter2@redis:6380/0")
    monkeypatch.setenv("FLEET_DATABASE_URL", "postgresql+psycopg://fleet:pgpass@db/fleet")
    monkeypatch.setenv("FLEET_FLOWER_AUTH", "admin:flowerpw")
    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "pgpass" not in result.output
    assert "flowerpw" not in result.output
    data = json.loads(result.output)
    assert data["broker_url"] == "rediss://fleet:***@redis:6380/0"
    assert data["broker_embedded"] is False


def test_bad_setting_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_TENANT", "a b")
    with pytest.raises(ConfigError, match="FLEET_TENANT"):
        load_settings()
    monkeypatch.setenv("FLEET_TENANT", "ok")
    monkeypatch.setenv("FLEET_LEASE_TTL", "-1")
    with pytest.raises(ConfigError, match="FLEET_LEASE_TTL"):
        load_settings()


def test_env_file_in_home_supplies_secrets(fleet_home, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    (fleet_home / "fleet.env").write_text("FLEET_DATABASE_URL=postgresql+psycopg://a:pw@db/x\n")
    (fleet_home / "fleet.env").chmod(0o600)
    assert load_settings().effective_database_url == "postgresql+psycopg://a:pw@db/x"
    monkeypatch.setenv("FLEET_DATABASE_URL", "sqlite:////tmp/other.db")
    assert load_settings().effective_database_url == "sqlite:////tmp/other.db"


def test_every_setting_is_in_the_configure_doc() -> None:
    """docs/configure.md is where an operator looks up a FLEET_* variable and its default."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configure.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `FLEET_")]
    documented = {line.split("`")[1] for line in rows}
    missing = [f"FLEET_{name.upper()}" for name in Settings.model_fields]
    missing = [var for var in missing if var not in documented]
    assert not missing, f"not in docs/configure.md: {missing}"
