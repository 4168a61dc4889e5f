"""``fleet demo``: the whole path on the embedded default, in a throwaway home.

Stub agents in real tmux, the embedded Redis, a real Celery worker and beat; a
small dependency graph of cards flows end to end and the run prints what
happened. Exit 0 only when every card is done.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import Settings

DEMO_AGENTS = [
    ("orchestrator", "orchestrator"),
    ("enhancer", "enhancer"),
    ("coder0", "implementer"),
    ("coder1", "implementer"),
    ("reviewer", "reviewer"),
]

# id, title, depends_on, target agent, target class
DEMO_CARDS: list[tuple[str, str, list[str], str | None, str | None]] = [
    ("plan", "Plan the release", [], "orchestrator", None),
    ("spec", "Sharpen the spec", ["plan"], None, "enhancer"),
    ("api", "Build the API", ["spec"], None, "implementer"),
    ("cli", "Build the CLI", ["spec"], None, "implementer"),
    ("docs", "Write the docs", ["spec"], None, "implementer"),
    ("review-api", "Review the API", ["api"], None, "reviewer"),
    ("review-cli", "Review the CLI", ["cli"], None, "reviewer"),
    ("release", "Cut the release", ["review-api", "review-cli", "docs"], "orchestrator", None),
]


def demo_roster(work_seconds: float) -> dict[str, Any]:
    env = {"FLEET_STUB_WORK": str(work_seconds)}
    return {
        "version": 1,
        "preset": "local-canary",
        "agents": [
            {"name": name, "runtime": "stub", "class": cls, "env": env}
            for name, cls in DEMO_AGENTS
        ],
    }


def demo_settings(home: Path | None = None) -> Settings:
    """Fast intervals so the demo is lively; a private socket so nothing else is touched."""
    base = home or Path(tempfile.mkdtemp(prefix="fleet-demo-"))
    return Settings(
        home=base,
        tmux_socket=f"fleet-demo-{os.getpid()}",
        heartbeat_interval=1.0,
        tick_interval=1.0,
        reclaim_interval=2.0,
        host_status_interval=1.0,
        lease_ttl=60.0,
    )


@dataclass
class DemoReport:
    cards: dict[str, int]
    deliveries: int
    seconds: float
    by_agent: dict[str, int]

    @property
    def ok(self) -> bool:
        return set(self.cards) == {"done"}


def write_demo_roster(settings: Settings, work_seconds: float) -> None:
    roster = parse_roster(demo_roster(work_seconds), "demo roster")
    write_roster(roster, settings.effective_roster_path)
