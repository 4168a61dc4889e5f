"""Two tenants on one Redis and one PostgreSQL database never see or take each other's cards.

Both tenants run on the same host identity (``hostx``), each with its own
FLEET_HOME, roster, tmux server, host worker and beat — the closest they can
be. Card ids are the same in both tenants on purpose; each card's title says
whose it is, so a stub log proves which tenant's text reached which pane.
Each tenant also has a card that only the *other* tenant's roster could serve:
it must stay ready.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import redis

from fleet_queue.cards import NewCard
from fleet_queue.store import CardStore
from tests.multihost.hosts import FleetHost, all_logs, card_marker, stub_agents
from tests.support.poll import wait_until
from tests.support.servers import RedisServer
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(240)]

HOST = "hostx"
TEAMS = {
    "default": [("lead", "orchestrator"), ("enh", "enhancer"), ("d0", "implementer")],
    "other": [("o0", "implementer"), ("o1", "reviewer")],
}
SHARED_IDS = ["same-1", "same-2", "same-3"]
STRANDED = {
    # tenant: (card, what only the other tenant has)
    "default": NewCard(id="needs-reviewer", title="tenant default card", target_class="reviewer"),
    "other": NewCard(id="needs-enhancer", title="tenant other card", target_class="enhancer"),
}
STRANDED_TARGETED = {
    "default": NewCard(id="for-o0", title="tenant default card", target_agent="o0"),
    "other": NewCard(id="for-d0", title="tenant other card", target_agent="d0"),
}


def title(tenant: str) -> str:
    return f"tenant {tenant} card"


@pytest.fixture
def tenants(tmp_path: Path, redis_srv: RedisServer, pg_url: str) -> Iterator[dict[str, FleetHost]]:
    redis.Redis.from_url(redis_srv.url).flushall()
    CardStore(pg_url).close()  # migrate once, before two workers start at the same time
    run = uuid.uuid4().hex[:8]
    hosts = {
        tenant: FleetHost.create(
            HOST,
            tmp_path / tenant,
            tenant=tenant,
            broker_url=redis_srv.url,
            database_url=pg_url,
            socket=f"fq{run}{tenant[0]}",
        )
        for tenant in TEAMS
    }
    try:
        for tenant, host in hosts.items():
            agents = [(name, cls, HOST) for name, cls in TEAMS[tenant]]
            host.write_roster({"version": 1, "preset": "minimal", "agents": stub_agents(agents)})
            host.start_agents()
            host.start_worker()
            host.start_beat()
        yield hosts
    finally:
        for host in hosts.values():
            host.stop()


def has_available(store: CardStore, team: set[str]) -> bool:
    return {s.agent for s in store.agent_statuses() if s.readiness == "available"} == team


def all_done(store: CardStore, ids: list[str]) -> bool:
    return all(str(store.get(i).status) == "done" for i in ids)


def received(host: FleetHost, tenant_of_card: str, card_id: str) -> list[str]:
    """Agents of ``host`` that got ``card_id`` of the given tenant (told apart by its title)."""
    marker = card_marker(card_id)
    return [
        name
        for name, _ in TEAMS[host.tenant]
        for text in host.messages(name)
        if marker in text and title(tenant_of_card) in text
    ]


def test_two_tenants_share_redis_and_postgres_but_not_cards(
    tenants: dict[str, FleetHost], pg_url: str
) -> None:
    stores = {tenant: CardStore(pg_url, tenant=tenant, host="test") for tenant in TEAMS}
    try:
        _run(tenants, stores)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n\n===== logs\n{all_logs(list(tenants.values()))}") from None
    finally:
        for store in stores.values():
            store.close()


def _run(hosts: dict[str, FleetHost], stores: dict[str, CardStore]) -> None:
    for tenant, store in stores.items():
        wait_until(
            partial(has_available, store, {n for n, _ in TEAMS[tenant]}),
            timeout=scaled(90), interval=0.1, what=f"tenant {tenant}'s agents available",
        )  # fmt: skip
    for tenant, store in stores.items():
        store.create_many([
            *(NewCard(id=i, title=title(tenant), target_class="implementer") for i in SHARED_IDS),
            STRANDED[tenant], STRANDED_TARGETED[tenant],
        ])  # fmt: skip
    for tenant, store in stores.items():
        wait_until(
            partial(all_done, store, SHARED_IDS),
            timeout=scaled(60), interval=0.1,
            what=f"tenant {tenant}'s cards done: {[(i, store.get(i).status) for i in SHARED_IDS]}",
        )  # fmt: skip
    # Three more beat ticks: a stranded card would have been taken by now if it could be.
    time.sleep(3 * float(hosts["default"].env["FLEET_TICK_INTERVAL"]))
    for tenant, store in stores.items():
        own = {c.id for c in store.list()}
        expected = {*SHARED_IDS, STRANDED[tenant].id, STRANDED_TARGETED[tenant].id}
        assert own == expected, (tenant, own)
        for stranded in (STRANDED[tenant], STRANDED_TARGETED[tenant]):
            card = store.get(stranded.id)
            assert str(card.status) == "ready" and card.attempts == 0, (tenant, card)
        assert {e.tenant_id for e in store.events()} == {tenant}
        assert {s.agent for s in store.agent_statuses()} == {n for n, _ in TEAMS[tenant]}
    for card_tenant in TEAMS:
        for host_tenant, host in hosts.items():
            for card_id in SHARED_IDS:
                got = received(host, card_tenant, card_id)
                if host_tenant == card_tenant:
                    assert len(got) == 1, (card_tenant, card_id, got)
                else:
                    assert got == [], f"{card_tenant}'s {card_id} reached {host_tenant}'s {got}"
            for new in (STRANDED[card_tenant], STRANDED_TARGETED[card_tenant]):
                assert received(host, card_tenant, new.id) == [], (card_tenant, new.id)
