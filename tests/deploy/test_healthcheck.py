"""workers.healthcheck against a real Celery worker on a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.poll import wait_until
from tests.support.servers import RedisServer, free_port
from workers.healthcheck import check_queue

pytestmark = [pytest.mark.redis, pytest.mark.e2e]  # a real Celery worker

REPO = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


@pytest.fixture
def worker(redis_srv: RedisServer) -> Iterator[tuple[str, str]]:
    """A real worker consuming one unique host queue; yields (node, queue)."""
    host = f"h{uuid.uuid4().hex[:8]}"
    node, queue = f"fleet@{host}", f"fleet.host.t1.{host}"
    env = {**os.environ, "FLEET_BROKER_URL": redis_srv.url}
    proc = subprocess.Popen(
        [
            CELERY,
            "-A",
            "tests.deploy.probe_app",
            "worker",
            "-Q",
            queue,
            "-n",
            node,
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: (
                proc.poll() is not None or check_queue(redis_srv.url, node, queue, timeout=1.0).ok
            ),
            timeout=60,
            interval=0.2,
            what="the worker to consume its queue",
        )
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield node, queue
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_check(broker: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.healthcheck", "--broker", broker, "--timeout", "2", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_passes_when_the_node_consumes_the_queue(
    redis_srv: RedisServer, worker: tuple[str, str]
) -> None:
    node, queue = worker
    done = run_check(redis_srv.url, "--node", node, "--queue", queue)
    assert done.returncode == 0, done.stderr
    assert f"ok: {node} consumes {queue}" in done.stdout


def test_fails_when_the_node_answers_but_does_not_consume_the_queue(
    redis_srv: RedisServer, worker: tuple[str, str]
) -> None:
    node, queue = worker
    done = run_check(redis_srv.url, "--node", node, "--queue", "fleet.host.t1.elsewhere")
    assert done.returncode == 1
    assert f"does not consume fleet.host.t1.elsewhere (consumes: {queue})" in done.stderr


def test_fails_when_no_such_node_answers(redis_srv: RedisServer) -> None:
    done = run_check(redis_srv.url, "--node", "fleet@nobody", "--queue", "fleet.host.t1.nobody")
    assert done.returncode == 1
    assert "fleet@nobody did not answer" in done.stderr


def test_defaults_come_from_fleet_settings(redis_srv: RedisServer) -> None:
    env = {
        **os.environ,
        "FLEET_HOST": "box7",
        "FLEET_TENANT": "acme",
        "FLEET_BROKER_URL": redis_srv.url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "workers.healthcheck", "--timeout", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "fleet-acme@box7 did not answer" in done.stderr


def test_print_node_names_the_node_as_the_worker_does() -> None:
    env = {**os.environ, "FLEET_HOST": "box7"}
    done = subprocess.run(
        [sys.executable, "-m", "workers.healthcheck", "--print-node"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "fleet@box7\n")


def test_unreachable_broker_is_unhealthy_in_one_line() -> None:
    done = run_check(f"redis://127.0.0.1:{free_port()}/0", "--node", "fleet@x", "--queue", "q")
    assert done.returncode == 1
    assert done.stderr.startswith("unhealthy: broker:")
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_timeout_is_a_usage_error(redis_srv: RedisServer) -> None:
    done = run_check(redis_srv.url, "--timeout", "0")
    assert done.returncode == 2
