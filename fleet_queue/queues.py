"""Queue, task and node names: every one carries the tenant, host queues the host.

Two tenants on one Redis never share a queue, so neither can take the other's work: the
names are built so that no two (tenant, host) pairs give the same queue, node or key.
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
    """Deliveries and status collection for one host's tmux server.

    Another tenant's queue joins tenant and host with ``:``, which no tenant or host name
    may hold (``fleet_queue.names``): tenant ``acme`` + host ``hub`` is ``fleet.host.acme:hub``
    and never the default tenant's host ``acme.hub`` (``fleet.host.acme.hub``).
    """
    return f"fleet.host.{host}" if tenant == "default" else f"fleet.host.{tenant}:{host}"


def node_name(tenant: str, host: str) -> str:
    return f"fleet@{host}" if tenant == "default" else f"fleet-{tenant}@{host}"


def redis_key(tenant: str, name: str) -> str:
    """Keys of our own in the broker's Redis (locks, debounce), namespaced per tenant."""
    return f"fleet:{tenant}:{name}"
