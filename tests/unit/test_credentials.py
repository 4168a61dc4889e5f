"""Secrets stay out of argv, the roster, printed URLs and panes."""

from __future__ import annotations

import json

import pytest

from fleet_queue.credentials import carries_secret, flower_environment, looks_secret
from fleet_queue.errors import RosterError
from fleet_queue.roster import parse_roster
from fleet_queue.settings import Settings, load_settings, mask_url, reveal
from tests.support.cli import run_fleet


@pytest.mark.parametrize(
    "name",
    [
        "DB_PASS",
        "PGPASS",
        "PGPASSWORD",
        "PGPASSFILE",
        "REDIS_PASSWORD",
        "BASIC_AUTH",
        "PROXY_AUTH",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AWS_CREDENTIALS",
        "GITHUB_TOKEN",
        "CLIENT_SECRET",
        "SIGNING_KEY",
        "ANTHROPIC_API_KEY",
        "OPENAI_APIKEY",
        "SSH_PRIVATE_KEY",
        "SENTRY_DSN",
    ],
)
def test_secret_names_are_caught(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    ["PATH", "KEYBOARD", "GIT_AUTHOR_NAME", "PASSAGE", "MONKEY", "PGPASS_FILE", "SSH_AUTH_SOCK"],
)
def test_ordinary_names_pass(name: str) -> None:
    assert not looks_secret(name)


def _agent_env(env: dict[str, str]) -> dict[str, object]:
    agent = {"name": "w1", "runtime": "stub", "class": "coder", "env": env}
    return {"preset": "minimal", "agents": [agent]}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DB_PASS", "hunter2"),
        ("PGPASS", "hunter2"),
        ("BASIC_AUTH", "ops:pw"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "{}"),
        ("ANTHROPIC_API_KEY", "sk-ant-literal"),
        ("DATABASE", "postgresql://fleet:pw@db/fleet"),
        ("CACHE", "redis://cache:6379/0?password=pw"),
        ("NOTE", "see https://u:pw@example.org/x for details"),
    ],
)
def test_the_roster_refuses_literal_secrets(key: str, value: str) -> None:
    with pytest.raises(RosterError) as caught:
        parse_roster(_agent_env({key: value}), "roster.yaml")
    assert caught.value.message.startswith(f"roster.yaml: agent 'w1': env.{key}: ")


def test_the_roster_takes_references_and_plain_values() -> None:
    env = {
        "ANTHROPIC_API_KEY": "${ANTHROPIC_API_KEY}",
        "DATABASE": "${DATABASE_URL}",
        "SITE": "https://example.org/docs?page=2",
        "EDITOR": "vi",
    }
    assert parse_roster(_agent_env(env)).agents[0].env == env


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        (
            "postgresql://u@h/db?password=pw&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("redis://h/0?pass=pw", "redis://h/0?pass=***"),
        ("amqp://h//?auth_token=t", "amqp://h//?auth_token=***"),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        ("rediss://h:6380/0?ssl_cert_reqs=required", "rediss://h:6380/0?ssl_cert_reqs=required"),
    ],
)
def test_mask_url_hides_userinfo_and_query_secrets(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert carries_secret(url) == (url != shown)


def test_fleet_config_masks_a_query_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_DATABASE_URL", "postgresql+psycopg://u@db/f?password=hunter2")
    from tests.support.cli import run_fleet

    run = run_fleet("config", "--json")
    assert run.exit_code == 0 and "hunter2" not in run.stdout and "password=***" in run.stdout


def test_flower_gets_its_login_through_the_environment(fleet_home: object) -> None:
    settings = Settings(flower_auth="ops:s3cret")
    assert flower_environment(settings) == {"FLOWER_BASIC_AUTH": "ops:s3cret"}
    assert flower_environment(Settings()) == {}


def test_flowers_command_line_holds_no_password(fleet_home: object) -> None:
    """``/proc/PID/cmdline`` is readable by every local user."""
    from fleet_queue.processes import flower_command

    argv = flower_command(Settings(flower_auth="ops:s3cret"), 5555, "0.0.0.0")
    assert not [arg for arg in argv if "s3cret" in arg]


def test_a_query_password_keeps_a_url_out_of_the_panes_environment(fleet_home: object) -> None:
    from fleet_queue.roster import AgentSpec
    from workers.runtimes import pane_env

    agent = AgentSpec.model_validate({"name": "w1", "runtime": "stub", "class": "coder"})
    secret = Settings(
        database_url="postgresql+psycopg://u@db/f?password=hunter2",
        broker_url="redis://hub:6379/0?password=hunter2",
    )
    env = pane_env(secret, agent, "fleet")
    assert "hunter2" not in " ".join(env.values())
    plain = Settings(broker_url="redis://hub:6379/0")
    assert pane_env(plain, agent, "fleet")["FLEET_BROKER_URL"] == "redis://hub:6379/0"


def test_secret_settings_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    """``SecretStr`` logins and ``repr=False`` URLs: repr, str and ``fleet config`` hide them."""
    secrets = {
        "FLEET_FLOWER_AUTH": "ops:flower-pw-9",
        "FLEET_BOARD_AUTH": "viewer:board-pw-9",
        "FLEET_BROKER_URL": "rediss://fleet:broker-pw-9@hub:6380/0",
        "FLEET_DATABASE_URL": "postgresql://fleet:db-pw-9@hub/fleet?sslmode=require",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    shown = [repr(settings), str(settings), json.dumps(settings.masked())]
    run = run_fleet("config", "--json")
    assert run.exit_code == 0, run.stderr
    shown.append(run.stdout + run.stderr)
    for text in shown:
        assert "-pw-9" not in text, text
    assert flower_environment(settings) == {"FLOWER_BASIC_AUTH": "ops:flower-pw-9"}
    assert reveal(settings.board_auth) == "viewer:board-pw-9"
