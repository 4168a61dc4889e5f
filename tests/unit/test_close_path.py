"""``fleet card done`` — what every agent runs after every card — loads the store and
the nudge, not Celery, the host layer, rich or the catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fleet_queue.cards import NewCard
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore

PROBE = """
import json, sys
sys.argv = ["fleet", *sys.argv[1:]]
from fleet_queue.cli import main
try:
    main()
finally:
    loaded = sorted({m.split(".")[0] for m in sys.modules})
    print(json.dumps(loaded), file=sys.stderr)
"""

NOT_ON_THE_CLOSE_PATH = {"celery", "kombu", "billiard", "workers", "rich", "yaml", "libtmux"}


def test_card_done_loads_no_celery_and_no_host_layer(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with CardStore.from_settings(settings, on_change=lambda kind: None) as store:
        store.create(NewCard(id="a1", title="closed by an agent"))
        claim = store.claim("c0", None, settings.host, 60, card_id="a1")
    assert claim is not None
    env = {**os.environ, "FLEET_HOME": str(tmp_path)}  # no broker runs: the nudge gives up
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "card", "done", "a1", "--token", str(claim.token)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a1: done\n"
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert "sqlalchemy" in loaded and "redis" in loaded  # it did reach the store and the nudge
    assert not loaded & NOT_ON_THE_CLOSE_PATH
