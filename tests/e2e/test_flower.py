"""Flower, started the documented way, shows the fleet's tasks behind basic auth."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_queue.cards import NewCard
from fleet_queue.processes import child_env
from fleet_queue.queues import DELIVER_TASK
from tests.support.fleet import Fleet
from tests.support.poll import wait_until
from tests.support.servers import free_port, wait_for_port
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

AUTH = ("ops", "flower-pw-2")


@pytest.fixture
def flower(team: Fleet, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**child_env(team.settings), "FLEET_FLOWER_AUTH": ":".join(AUTH)}
    log = (tmp_path / "flower.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_queue", "flower", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=scaled(60))
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(":".join(auth).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_flower_needs_auth_and_lists_deliveries_with_arguments(team: Fleet, flower: str) -> None:
    assert get(f"{flower}/api/tasks")[0] == 401
    assert get(f"{flower}/api/tasks", auth=("ops", "wrong"))[0] == 401

    def tasks_named(name: str | None = None) -> list[dict[str, object]]:
        status, body = get(f"{flower}/api/tasks", auth=AUTH)
        assert status == 200, body
        tasks: dict[str, dict[str, object]] = json.loads(body)
        return [t for t in tasks.values() if name is None or t.get("name") == name]

    # Flower hears task events only once its receiver is subscribed: beat's status
    # requests (every 0.5 s here) show when it is.
    wait_until(tasks_named, timeout=scaled(30), what="flower to receive its first task events")
    team.store.create(NewCard(id="fl1", title="seen in flower", target_agent="c0"))
    team.wait_status("fl1", "done", timeout=scaled(60))

    def deliveries() -> list[dict[str, object]]:
        return tasks_named(DELIVER_TASK)

    tasks = wait_until(deliveries, timeout=scaled(30), what="flower to list fleet.deliver_card")
    assert any("fl1" in str(t.get("args")) and "c0" in str(t.get("args")) for t in tasks), tasks


def test_flower_metrics_need_the_login_too(team: Fleet, flower: str) -> None:
    """Flower 2.x serves /metrics without its login; ``fleet flower`` does not."""
    assert get(f"{flower}/metrics")[0] == 401
    assert get(f"{flower}/metrics", auth=("ops", "wrong"))[0] == 401
    status, body = get(f"{flower}/metrics", auth=AUTH)
    assert status == 200 and "flower_" in body
    assert get(f"{flower}/healthcheck") == (200, "OK")


def test_flower_without_auth_serves_only_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.cli import run_fleet

    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "fleet"))
    monkeypatch.delenv("FLEET_FLOWER_AUTH", raising=False)
    run = run_fleet("flower", "--address", "0.0.0.0")
    assert run.exit_code == 2 and "FLEET_FLOWER_AUTH" in run.stderr
