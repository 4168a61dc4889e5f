"""The dispatch pipeline in one process, in the spirit of dramatiq's ``StubBroker``.

The supervisor tick (``fleet_queue.tasks.tick_once``) and the host tasks
(``workers.tasks.deliver`` and ``collect_status``) run here as plain calls, with the
real store, the real Redis keys (tick lock, typed-once key) and real stub agents in
real tmux panes. The deliveries the tick pushes onto the host queues (in Redis, as a
worker would find them) are taken off by the test, and what else a task body sends to
Celery is kept by ``RecordingApp``; a test runs those messages in the order it chooses,
as often as it chooses: a stale token, a redelivery, a retry are each one call.
No Celery worker, beat or broker consumer runs, so a fence or pause rule is
checked in well under a second instead of a fleet's start-up time.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from fleet_queue.context import FleetContext
from fleet_queue.queues import DELIVER_TASK, host_queue
from fleet_queue.roster import Roster, parse_roster, write_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.fleet import fleet_settings
from tests.support.poll import wait_until


@dataclass(frozen=True)
class SentTask:
    """One message a task body sent: the task's name, its arguments, its options."""

    name: str
    args: tuple[Any, ...]
    options: dict[str, Any]


class RetryRequested(Exception):
    """What ``Task.retry`` raises in Celery: the body asked to run again later."""

    def __init__(self, countdown: float | None) -> None:
        super().__init__(f"retry in {countdown}s")
        self.countdown = countdown


def queued_task(message: dict[str, Any], queue: str) -> SentTask:
    """A task message as kombu's Redis transport stores it (protocol 2, JSON body)."""
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    options = {"queue": queue, "expires": message["headers"]["expires"], **kwargs}
    return SentTask(message["headers"]["task"], tuple(args), options)


@dataclass
class RecordingApp:
    """What the fleet's task bodies use of a Celery app: ``fleet`` and ``send_task``."""

    fleet: FleetContext
    sent: list[SentTask] = field(default_factory=list)

    def send_task(self, name: str, args: tuple[Any, ...] = (), **options: Any) -> None:
        self.sent.append(SentTask(name, tuple(args), options))


@dataclass
class InlineTask:
    """What a bound task body uses of ``self``: its app and ``retry``."""

    app: RecordingApp

    def retry(self, countdown: float | None = None, **_: Any) -> RetryRequested:
        raise RetryRequested(countdown)


@dataclass
class Pipeline:
    settings: Settings
    roster: Roster
    context: FleetContext
    app: RecordingApp

    @property
    def store(self) -> CardStore:
        return self.context.store

    def task(self) -> InlineTask:
        return InlineTask(self.app)

    def report_status(self) -> dict[str, Any]:
        """What the host-status task does: probe the panes, write the agents' rows."""
        from workers.tasks import collect_status

        return collect_status(self.task())

    def tick(self) -> dict[str, Any]:
        """One supervisor tick, under the tenant's real Redis lock, after a status report:
        in a fleet the host worker reports every interval, and the tick trusts no row
        older than a few intervals (a slow delivery before this tick must not look like
        a dead host)."""
        from fleet_queue.tasks import tick_once

        self.report_status()
        return tick_once(self.task())

    def take_deliveries(self) -> list[SentTask]:
        """The delivery messages sent since the last call: taken off the host queues as a
        host worker takes them, oldest first (and any a body sent through the app)."""
        taken = [sent for sent in self.app.sent if sent.name == DELIVER_TASK]
        self.app.sent = [sent for sent in self.app.sent if sent.name != DELIVER_TASK]
        settings, client = self.settings, self.context.redis
        hosts = sorted({agent.host_or(settings.host) for agent in self.roster.agents})
        for queue in (host_queue(settings.tenant, host) for host in hosts):
            while isinstance(raw := client.rpop(queue), bytes | str):
                taken.append(queued_task(json.loads(raw), queue))
        return taken

    def tick_for_one(self) -> SentTask:
        """Tick, and return the one delivery it sent."""
        result = self.tick()
        sent = self.take_deliveries()
        assert len(sent) == 1, f"expected one delivery, tick said {result}, sent {sent}"
        return sent[0]

    def deliver(self, message: SentTask) -> dict[str, Any]:
        """Run the host worker's delivery body for ``message``; a retry is a result."""
        from workers.tasks import deliver

        assert message.name == DELIVER_TASK
        card_id, token, agent = message.args
        try:
            return deliver(self.task(), card_id, token, agent)
        except RetryRequested as retry:
            return {"retry": retry.countdown}

    def messages(self, agent: str) -> list[str]:
        """What the stub agent received, from its own byte-exact log."""
        from workers.stub_agent import log_path, received_messages

        return received_messages(log_path(self.settings.run_dir, agent))

    def typed(self, card_id: str, token: int | None = None) -> int:
        """How many times the card's text (of ``token``, if given) reached any pane."""
        marker = f"fleet card done {card_id} --token " + ("" if token is None else f"{token}")
        return sum(
            1 for agent in self.roster.names() for text in self.messages(agent) if marker in text
        )

    def wait_available(self, timeout: float) -> None:
        """Report status until every agent's row says available (its stub drew a prompt)."""

        def all_available() -> bool:
            self.report_status()
            rows = self.store.agent_statuses()
            ready = [row for row in rows if row.readiness == "available"]
            return len(ready) == len(self.roster.agents)

        wait_until(all_available, timeout=timeout, interval=0.1, what="every agent available")


@contextmanager
def inprocess_pipeline(
    home: Path,
    broker_url: str,
    socket: str,
    roster_data: dict[str, Any],
    *,
    start_timeout: float,
    **overrides: Any,
) -> Iterator[Pipeline]:
    """Stub agents in tmux on ``socket``, a store under ``home``, Redis at ``broker_url``.

    Nudges are off: nothing consumes the control queue here, and the test says when a
    tick runs. The Redis database is flushed first (typed-once keys of an earlier test).
    """
    from workers.sessions import start_agents, stop_agents
    from workers.tmux import TmuxServer

    settings = fleet_settings(home, broker_url, socket, nudge=False, **overrides)
    redis.Redis.from_url(broker_url).flushdb()
    roster = parse_roster(roster_data, "pipeline roster")
    write_roster(roster, settings.effective_roster_path)
    context = FleetContext(settings)
    pipeline = Pipeline(settings, context.roster, context, RecordingApp(context))
    try:
        start_agents(settings, pipeline.roster, pipeline.roster.names())
        pipeline.wait_available(start_timeout)
        yield pipeline
    finally:
        deliverer = context.extras.get("deliverer")
        if deliverer is not None:
            deliverer.close()
        with contextlib.suppress(Exception):
            stop_agents(settings, pipeline.roster, pipeline.roster.names())
        with contextlib.suppress(Exception):
            TmuxServer.for_fleet(settings, pipeline.roster).kill_server()
        context.dispose()
