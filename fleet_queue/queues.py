"""Queue, task and node names: every one carries the tenant, host queues the host.

Two tenants on one Redis never share a queue, so neither can take the other's work.
"""

from __future__ import annotations

TICK_TASK = "fleet.supervisor_tick"
RECLAIM_TASK = "fleet.reclaim_expired"
REQUEST_STATUS_TASK = "fleet.request_host_status"
DELIVER_TASK = "fleet.deliver_card"
HOST_STATUS_TASK = "fleet.collect_host_status"


def control_queue(tenant: str) -> str:
    """Supervisor tick and reclaim; any host worker of the tenant may consume it."""
    return "fleet.control" if tenant == "default" else f"fleet.control.{tenant}"


def host_queue(tenant: str, host: str) -> str:
    """Deliveries and status collection for one host's tmux server."""
    return f"fleet.host.{host}" if tenant == "default" else f"fleet.host.{tenant}.{host}"


def node_name(tenant: str, host: str) -> str:
    return f"fleet@{host}" if tenant == "default" else f"fleet-{tenant}@{host}"


def redis_key(tenant: str, name: str) -> str:
    """Keys of our own in the broker's Redis (locks, debounce), namespaced per tenant."""
    return f"fleet:{tenant}:{name}"
