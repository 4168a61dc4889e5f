"""The host worker starts as ``celery worker`` would, without Celery's command line.

Run in a fresh interpreter with ``Worker.start`` replaced by a report of what was built,
so the check sees the worker's own imports (this test process has imported plenty) and
the options as the worker holds them. That the worker then works is what every fleet
test shows (they start it through ``worker_command``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fleet_queue.processes import worker_command
from fleet_queue.settings import Settings
from tests.support.timing import scaled

BUILT_NOT_STARTED = """
import json, sys
from celery.apps.worker import Worker

def report(self):
    print(json.dumps({
        "hostname": self.hostname,
        "queues": sorted(self.app.amqp.queues.consume_from),
        "pool": self.pool_cls.__module__,
        "concurrency": self.concurrency,
        "task_events": self.task_events,
        "steps": {s.name.rsplit(".", 1)[-1]: s.enabled for s in self.consumer.blueprint.order},
        "modules": sorted(sys.modules),
    }))
    raise SystemExit(0)

Worker.start = report
sys.argv = ["worker_main", *sys.argv[1:]]
from fleet_queue.worker_main import main
main()
"""


def test_the_host_worker_is_built_as_celery_worker_builds_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", tenant="t9", host="h9")
    command = worker_command(settings, concurrency=3)
    assert command[:3] == [sys.executable, "-m", "fleet_queue.worker_main"]
    run = subprocess.run(
        [sys.executable, "-c", BUILT_NOT_STARTED, *command[3:]],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
        env={**os.environ, "FLEET_HOME": str(settings.home)},
    )
    assert run.returncode == 0, run.stderr
    built = json.loads(run.stdout.splitlines()[-1])
    assert built["hostname"] == command[command.index("-n") + 1]
    assert set(built["queues"]) == set(command[command.index("-Q") + 1].split(","))
    assert built["pool"] == "celery.concurrency.thread"
    assert built["concurrency"] == 3
    assert built["task_events"] is True
    assert built["steps"]["Gossip"] is False and built["steps"]["Mingle"] is False
    assert built["steps"]["Events"] is True
    modules = built["modules"]
    assert "fleet_queue.celery_app" in modules
    cli = [m for m in modules if m.startswith(("celery.bin", "flower", "click_repl"))]
    assert cli == [] and "prompt_toolkit" not in modules


def test_bad_options_fail_in_one_line_and_start_nothing(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "fleet_queue.worker_main", "--concurrency", "many"],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
        env={**os.environ, "FLEET_HOME": str(tmp_path / "home")},
    )
    assert run.returncode == 2
    assert "invalid int value: 'many'" in run.stderr
