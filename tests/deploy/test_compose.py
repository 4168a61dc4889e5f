"""docker-compose.yml is valid for Debian's docker-compose and says what we deploy.

``docker-compose config`` resolves and validates the file without an engine; the
parsed result is then checked service by service.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
DOCKER_COMPOSE = "/usr/bin/docker-compose"
SECRETS = {
    "FLEET_REDIS_PASSWORD": "redis-pw-1",
    "FLEET_POSTGRES_PASSWORD": "pg-pw-1",
    "FLEET_FLOWER_AUTH": "ops:flower-pw-1",
}


def compose_config(extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(extra)
    return subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "config", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    assert Path(DOCKER_COMPOSE).exists(), "install Debian's docker-compose (scripts/test.sh does)"
    done = compose_config({**SECRETS, "FLEET_HOST": "box7", "FLEET_HOST_HOME": "/srv/fleet"})
    assert done.returncode == 0, done.stderr
    parsed = yaml.safe_load(done.stdout)
    assert isinstance(parsed, dict)
    return parsed


def test_all_services_are_there(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"redis", "postgres", "flower", "beat", "worker"}


def test_hub_config_needs_only_the_secrets() -> None:
    done = compose_config(SECRETS, "--services")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["redis", "postgres", "flower", "beat", "worker"]


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_a_missing_secret_is_refused_by_name(missing: str) -> None:
    done = compose_config({k: v for k, v in SECRETS.items() if k != missing}, "-q")
    assert done.returncode != 0
    assert f"set {missing}" in done.stderr


def test_redis_has_password_noeviction_aof_and_an_authenticated_ping(
    config: dict[str, Any],
) -> None:
    redis = config["services"]["redis"]
    command = " ".join(redis["command"])
    assert '--requirepass "$$REDIS_PASSWORD"' in command
    assert "--maxmemory-policy noeviction" in command
    assert "--appendonly yes" in command
    assert redis["environment"]["REDIS_PASSWORD"] == "redis-pw-1"
    assert redis["environment"]["REDISCLI_AUTH"] == "redis-pw-1"
    assert redis["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -q PONG"]
    assert any(v.endswith(":/data:rw") for v in redis["volumes"])


def test_postgres_has_password_volume_and_pg_isready(config: dict[str, Any]) -> None:
    pg = config["services"]["postgres"]
    assert pg["environment"]["POSTGRES_PASSWORD"] == "pg-pw-1"
    assert pg["healthcheck"]["test"] == ["CMD-SHELL", "pg_isready -U fleet -d fleet"]
    assert any("/var/lib/postgresql/data" in v for v in pg["volumes"])


def test_fleet_services_reach_redis_and_postgres_with_the_passwords(
    config: dict[str, Any],
) -> None:
    for name in ("flower", "beat", "worker"):
        env = config["services"][name]["environment"]
        assert env["FLEET_BROKER_URL"] == "redis://:redis-pw-1@redis:6379/0"
        assert env["FLEET_DATABASE_URL"] == (
            "postgresql+psycopg://fleet:pg-pw-1@postgres:5432/fleet?sslmode=prefer"
        )
        assert config["services"][name]["image"] == "fleet-queue:latest"


def test_flower_runs_the_fleet_app_with_basic_auth(config: dict[str, Any]) -> None:
    flower = config["services"]["flower"]
    assert flower["command"][:4] == ["celery", "-A", "fleet_queue.celery_app", "flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "ops:flower-pw-1"
    assert "/healthcheck" in " ".join(flower["healthcheck"]["test"])


def test_beat_runs_fleet_beat(config: dict[str, Any]) -> None:
    beat = config["services"]["beat"]
    assert beat["command"] == ["fleet", "beat"]
    assert set(beat["depends_on"]) == {"redis", "postgres"}


def test_worker_mounts_the_host_tmux_socket_and_checks_ping_and_its_queue(
    config: dict[str, Any],
) -> None:
    worker = config["services"]["worker"]
    assert worker["command"] == ["fleet", "worker"]
    assert worker["profiles"] == ["host-worker"]
    assert worker["environment"]["FLEET_HOST"] == "box7"
    assert worker["environment"]["FLEET_HOME"] == "/srv/fleet"
    assert worker["volumes"] == ["/srv/fleet:/srv/fleet:rw"]
    assert "TMUX_TMPDIR" not in worker["environment"]  # the code sets $FLEET_HOME/run
    test = worker["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert "celery -A fleet_queue.celery_app inspect ping" in test[1]
    assert '-d "$$(python -m workers.healthcheck --print-node)"' in test[1]
    assert "&& python -m workers.healthcheck --timeout 5" in test[1]


def test_worker_runs_as_the_tmux_owner(config: dict[str, Any]) -> None:
    done = compose_config({**SECRETS, "FLEET_UID": "1234", "FLEET_GID": "55"})
    worker = yaml.safe_load(done.stdout)["services"]["worker"]
    assert worker["user"] == "1234:55"


def _published(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each published port."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip", ""), str(port["published"]), str(port["target"])))
        else:
            address, published, target = str(port).rsplit(":", 2)
            out.append((address, published, target.removesuffix("/tcp")))
    return out


def test_ports_listen_on_loopback_unless_the_operator_opts_in(config: dict[str, Any]) -> None:
    published = {name: _published(s) for name, s in config["services"].items()}
    assert published["redis"] == [("127.0.0.1", "6379", "6379")]
    assert published["postgres"] == [("127.0.0.1", "5432", "5432")]
    assert published["flower"] == [("127.0.0.1", "5555", "5555")]
    opted = yaml.safe_load(compose_config({**SECRETS, "FLEET_BIND": "10.8.0.1"}).stdout)
    assert _published(opted["services"]["redis"]) == [("10.8.0.1", "6379", "6379")]
    assert _published(opted["services"]["flower"]) == [("127.0.0.1", "5555", "5555")]


def test_images_are_pinned_and_the_file_is_compose_v2(config: dict[str, Any]) -> None:
    for name in ("redis", "postgres"):
        image = config["services"][name]["image"]
        tag = image.split(":", 1)[1]
        assert tag[0].isdigit() and "." in tag, f"{name}: {image} is not pinned to a release"
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    assert "version" not in raw


def test_the_dockerfile_copies_only_files_that_exist_and_installs_tmux() -> None:
    repo = COMPOSE_FILE.parent
    lines = (repo / "Dockerfile").read_text().splitlines()
    assert [line for line in lines if line.startswith("FROM")] == ["FROM python:3.11-slim"]
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    sources = [src for parts in copies for src in parts]
    assert sources, "the Dockerfile copies nothing"
    for src in sources:
        assert (repo / src).exists(), f"Dockerfile copies missing {src}"
    assert any("install -y --no-install-recommends tmux" in line for line in lines)
    ignored = (repo / ".dockerignore").read_text().split()
    assert not set(sources) & set(ignored), "the build context drops a copied file"
