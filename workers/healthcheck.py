"""Is this host worker alive *and* consuming its queue?

``celery inspect ping`` is not enough: after a Redis restart a worker can keep
answering ping on the control channel while its consumer is gone, so it takes
no cards. This check asks the node for its active queues and fails unless the
host queue is among them. It needs only the broker, not the fleet's Celery app,
so it works in a container health check and before any task module imports.

``python -m workers.healthcheck [--node NODE] [--queue QUEUE]`` (defaults: this
host's node and host queue, named by ``fleet_queue.queues`` from ``FLEET_TENANT``
and ``FLEET_HOST``) exits 0 when the node consumes the queue, 1 when it does not
or does not answer, 2 on bad input. ``--print-node`` prints the node name, for
``celery inspect ping -d``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery

from fleet_queue.broker_tls import target_for_url
from fleet_queue.errors import FleetError
from fleet_queue.queues import host_queue, node_name
from fleet_queue.settings import Settings, load_settings


@dataclass(frozen=True)
class QueueCheck:
    """What the node answered, in a form a health check can print."""

    node: str
    queue: str
    answered: bool
    queues: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.answered and self.queue in self.queues

    def describe(self) -> str:
        if not self.answered:
            return f"unhealthy: {self.node} did not answer"
        if not self.ok:
            found = ", ".join(self.queues) or "none"
            return f"unhealthy: {self.node} does not consume {self.queue} (consumes: {found})"
        return f"ok: {self.node} consumes {self.queue}"


def default_node(settings: Settings) -> str:
    return node_name(settings.tenant, settings.host)


def default_queue(settings: Settings) -> str:
    return host_queue(settings.tenant, settings.host)


def check_queue(
    broker_url: str,
    node: str,
    queue: str,
    timeout: float = 5.0,
    tls: dict[str, Any] | None = None,
) -> QueueCheck:
    """Ask ``node`` over the broker which queues it consumes right now.

    ``tls``: the broker's TLS options (``fleet_queue.broker_tls``), so a ``rediss://``
    check verifies the certificate as the worker does."""
    app = Celery("fleet-healthcheck", broker=broker_url, set_as_current=False)
    if tls is not None:
        app.conf.broker_use_ssl = tls
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = 1
    try:
        replies: dict[str, list[dict[str, Any]]] | None = app.control.inspect(
            destination=[node], timeout=timeout
        ).active_queues()
    finally:
        app.close()
    if not replies or node not in replies:
        return QueueCheck(node, queue, answered=False, queues=())
    names = tuple(str(entry.get("name", "")) for entry in replies[node])
    return QueueCheck(node, queue, answered=True, queues=names)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workers.healthcheck",
        description="Exit 0 only if the host worker answers and consumes its host queue.",
    )
    parser.add_argument("--node", help="Celery node name [default: this host's node].")
    parser.add_argument("--queue", help="Queue it must consume [default: this host's queue].")
    parser.add_argument("--print-node", action="store_true", help="Print the node name and exit.")
    parser.add_argument("--broker", help="Broker URL [default: the fleet's broker].")
    parser.add_argument("--timeout", type=float, default=5.0, help="Seconds to wait for replies.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.timeout <= 0:
        print("fleet-healthcheck: --timeout must be positive", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except FleetError as exc:
        print(f"fleet-healthcheck: {exc.message}", file=sys.stderr)
        return exc.exit_code
    node = args.node or default_node(settings)
    if args.print_node:
        print(node)
        return 0
    queue = args.queue or default_queue(settings)
    try:
        target = target_for_url(args.broker or settings.effective_broker_url, settings)
        result = check_queue(target.url, node, queue, args.timeout, target.tls)
    except Exception as exc:  # any broker failure means unhealthy, in one line
        print(f"unhealthy: broker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(result.describe(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
