"""``fleet demo``: the whole path on the embedded default, in a throwaway home.

Stub agents (or, with ``--runtime``, real Claude Code / Codex coders on a model double:
``fleet_queue.demo_runtime``) in real tmux, the embedded Redis, a real Celery worker and beat; a
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from fleet_queue.cards import NewCard
from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from fleet_queue.demo_runtime import RuntimeSetup
    from fleet_queue.model_double import ModelDouble
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


def demo_roster(
    work_seconds: float, coders: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Stub agents, but for the entries of ``coders`` (real runtimes, by name)."""
    env = {"FLEET_STUB_WORK": str(work_seconds)}
    real = coders or {}
    return {
        "version": 1,
        "preset": "local-canary",
        "agents": [
            real.get(name) or {"name": name, "runtime": "stub", "class": cls, "env": env}
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
    home: str | None = None
    runtime: str = "stub"
    notes: list[str] = field(default_factory=list)
    model_turns: int | None = None
    """Requests of the coders' own loop the model double answered (real runtimes only)."""

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
            "runtime": self.runtime,
            "notes": self.notes,
            "model_turns": self.model_turns,
        }

    def render(self) -> str:
        agents = ", ".join(f"{name}={count}" for name, count in sorted(self.by_agent.items()))
        cards = ", ".join(f"{status}={count}" for status, count in sorted(self.cards.items()))
        verdict = "all cards done" if self.ok else "NOT all cards done"
        coders = (
            f"; coders: {self.runtime} on the model double ({self.model_turns} model turns)"
            if self.runtime != "stub"
            else ""
        )
        notes = "".join(f"demo: note: {note}\n" for note in self.notes)
        return notes + (
            f"demo: {verdict} — cards: {cards}; deliveries: {self.deliveries} ({agents}){coders};"
            f" {self.seconds:.1f}s" + (f"; kept {self.home}" if self.home else "")
        )


def write_demo_roster(
    settings: Settings, work_seconds: float, coders: dict[str, dict[str, Any]] | None = None
) -> None:
    roster = parse_roster(demo_roster(work_seconds, coders), "demo roster")
    write_roster(roster, settings.effective_roster_path)


def demo_cards(runtime: str = "stub") -> list[NewCard]:
    who = "a stub agent" if runtime == "stub" else "the agent"
    return [
        NewCard(
            id=card_id,
            title=title,
            body=f"Demo card '{card_id}': {who} works it and closes it.",
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
    runtime: str = "stub",
) -> DemoReport:
    """Bring a fleet up, feed it the demo graph, wait for the end, tear it down.

    With ``runtime`` claude or codex the coders are that real CLI on a model double this
    process serves (checked first: a missing CLI starts nothing). Torn down on success,
    failure, Ctrl-C and SIGTERM alike: no process, tmux server or lock of the demo
    outlives it. The temporary home (store, logs, stub logs) is removed afterwards unless
    ``keep``.
    """
    from fleet_queue.demo_runtime import model_key, runtime_setup
    from fleet_queue.model_double import ModelDouble
    from fleet_queue.up import running_fleet

    setup = runtime_setup(runtime)
    settings = demo_settings()
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            stack.enter_context(interrupted_by_sigterm())
            double = stack.enter_context(ModelDouble()) if runtime != "stub" else None
            stack.enter_context(model_key())
            write_demo_roster(settings, work_seconds, real_coders(settings, setup, double))
            store, _procs = stack.enter_context(running_fleet(settings, agents))
            store.create_many(demo_cards(runtime))
            wait_for_cards(store, len(DEMO_CARDS), timeout, quiet)
            report = build_report(store, time.monotonic() - started)
            report.runtime, report.notes = runtime, setup.notes
            report.model_turns = len(double.main_turns()) if double else None
    finally:
        if not keep:
            shutil.rmtree(settings.home, ignore_errors=True)
    report.home = str(settings.home) if keep else None
    return report


def real_coders(
    settings: Settings, setup: RuntimeSetup, double: ModelDouble | None
) -> dict[str, dict[str, Any]]:
    """The roster entries of the coders when they are a real CLI: in a work dir of the home."""
    from fleet_queue.demo_runtime import CODER_CLASS, coder_entry

    if double is None:
        return {}
    workdir = settings.home / "work"
    workdir.mkdir(mode=0o700, exist_ok=True)
    return {
        name: coder_entry(name, setup, double.url, workdir)
        for name, cls in DEMO_AGENTS
        if cls == CODER_CLASS
    }


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
