"""``fleet demo``: the whole path on the embedded default, in a throwaway home.

Stub agents in real tmux, the embedded Redis, a real Celery worker and beat; a
small dependency graph of cards flows end to end and the run prints what
happened. Exit 0 only when every card is done.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from fleet_queue.cards import NewCard
from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from fleet_queue.store import CardStore
    from fleet_queue.up import HostAgents

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
            {"name": name, "runtime": "stub", "class": cls, "env": env} for name, cls in DEMO_AGENTS
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
    home: str | None = None

    @property
    def ok(self) -> bool:
        return set(self.cards) == {"done"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "cards": self.cards,
            "deliveries": self.deliveries,
            "seconds": round(self.seconds, 2),
            "by_agent": self.by_agent,
            "home": self.home,
        }

    def render(self) -> str:
        agents = ", ".join(f"{name}={count}" for name, count in sorted(self.by_agent.items()))
        cards = ", ".join(f"{status}={count}" for status, count in sorted(self.cards.items()))
        verdict = "all cards done" if self.ok else "NOT all cards done"
        return (
            f"demo: {verdict} — cards: {cards}; deliveries: {self.deliveries} ({agents});"
            f" {self.seconds:.1f}s" + (f"; kept {self.home}" if self.home else "")
        )


def write_demo_roster(settings: Settings, work_seconds: float) -> None:
    roster = parse_roster(demo_roster(work_seconds), "demo roster")
    write_roster(roster, settings.effective_roster_path)


def demo_cards() -> list[NewCard]:
    return [
        NewCard(
            id=card_id,
            title=title,
            body=f"Demo card '{card_id}': a stub agent works it and closes it.",
            depends_on=tuple(deps),
            target_agent=agent,
            target_class=cls,
            priority=len(DEMO_CARDS) - index,
        )
        for index, (card_id, title, deps, agent, cls) in enumerate(DEMO_CARDS)
    ]


def run_demo(
    agents: HostAgents,
    work_seconds: float = 0.5,
    timeout: float = 180.0,
    quiet: bool = False,
    keep: bool = False,
) -> DemoReport:
    """Bring a stub fleet up, feed it the demo graph, wait for the end, tear it down.

    Torn down on success, failure, Ctrl-C and SIGTERM alike: no process, tmux server or
    lock of the demo outlives it. The temporary home (store, logs, stub logs) is removed
    afterwards unless ``keep``.
    """
    from fleet_queue.up import running_fleet

    settings = demo_settings()
    write_demo_roster(settings, work_seconds)
    started = time.monotonic()
    try:
        with interrupted_by_sigterm(), running_fleet(settings, agents) as (store, _procs):
            store.create_many(demo_cards())
            wait_for_cards(store, len(DEMO_CARDS), timeout, quiet)
            report = build_report(store, time.monotonic() - started)
    finally:
        if not keep:
            shutil.rmtree(settings.home, ignore_errors=True)
    report.home = str(settings.home) if keep else None
    return report


@contextmanager
def interrupted_by_sigterm() -> Iterator[None]:
    """SIGTERM ends the demo the way Ctrl-C does, through its clean-up, not around it."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_for_cards(store: CardStore, total: int, timeout: float, quiet: bool) -> None:
    """Show progress until every card is done or failed, or the time is up."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("[bold]cards"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        disable=quiet,
    ) as progress:  # fmt: skip
        bar = progress.add_task("", total=total)
        while time.monotonic() < deadline:
            counts = status_counts(store)
            finished = counts.get("done", 0) + counts.get("failed", 0)
            progress.update(bar, completed=counts.get("done", 0), description=_describe(counts))
            if finished >= total:
                return
            time.sleep(0.2)


def status_counts(store: CardStore) -> dict[str, int]:
    by_status: dict[str, int] = store.stats()["counts"]
    return {key: value for key, value in by_status.items() if value}


def _describe(counts: dict[str, int]) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(counts.items()))


def build_report(store: CardStore, seconds: float) -> DemoReport:
    delivered = [event for event in store.events(limit=10_000) if event.kind == "delivered"]
    by_agent: dict[str, int] = {}
    for event in delivered:
        by_agent[event.agent or "?"] = by_agent.get(event.agent or "?", 0) + 1
    return DemoReport(
        cards=status_counts(store), deliveries=len(delivered), seconds=seconds, by_agent=by_agent
    )
