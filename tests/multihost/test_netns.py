"""Two hosts and a hub in Linux namespaces: where cards go, and what a dead host worker costs.

hub   10.231.0.1  Redis (password) + PostgreSQL
hosta 10.231.0.2  hostname hosta: lead, enh, a0 (implementer); host worker; the one beat
hostb 10.231.0.3  hostname hostb: b0 (implementer), b1 (reviewer); host worker

Each host has its own FLEET_HOME, tmux server and stub agents; the only thing
they share is the hub. Which agent got a card is read from the stub agents'
own logs in each host's FLEET_HOME/run: b0's pane exists only in hostb's tmux
server, so a card in b0's log was typed by hostb's worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet_queue.cards import NewCard
from fleet_queue.store import CardStore
from tests.multihost.hosts import FleetHost, all_logs, card_marker, lease_ttl, stub_agents
from tests.support.netns import HubServers, Network, hub_servers, namespace_network
from tests.support.poll import wait_until
from tests.support.timing import scaled

pytestmark = [pytest.mark.netns, pytest.mark.timeout(300)]

AGENTS = {
    "hosta": [("lead", "orchestrator"), ("enh", "enhancer"), ("a0", "implementer")],
    "hostb": [("b0", "implementer"), ("b1", "reviewer")],
}
ROSTER = {
    "version": 1,
    "preset": "minimal",
    "agents": stub_agents([(n, c, host) for host, team in AGENTS.items() for n, c in team]),
}


def names(host: str) -> list[str]:
    return [name for name, _ in AGENTS[host]]


@dataclass
class MultiHost:
    net: Network
    hub: HubServers
    store: CardStore
    hosts: dict[str, FleetHost]

    def logs(self) -> str:
        return all_logs(list(self.hosts.values()))

    def receivers(self, card_id: str) -> list[str]:
        """``agent@host`` for every pane the card's text reached, on any host."""
        return [
            f"{agent}@{label}"
            for label, host in self.hosts.items()
            for agent in host.agents_with(card_id, names(label))
        ]

    def deliveries(self, card_id: str) -> int:
        marker = card_marker(card_id)
        return sum(
            sum(marker in m for m in host.messages(agent))
            for label, host in self.hosts.items()
            for agent in names(label)
        )

    def status(self, card_id: str) -> str:
        return str(self.store.get(card_id).status)

    def kinds(self, card_id: str) -> list[str]:
        return [e.kind for e in self.store.events(card_id=card_id)]

    def wait(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        wait_until(predicate, timeout=timeout, interval=0.1, what=what)

    def all_done(self, ids: list[str], timeout: float = 60.0) -> None:
        self.wait(
            lambda: all(self.status(i) == "done" for i in ids), scaled(timeout),
            f"all done: {[(i, self.status(i)) for i in ids]}",
        )  # fmt: skip

    def hold(self, seconds: float, check: Callable[[], None]) -> None:
        """``check`` must keep passing for ``seconds`` (an invariant, not a wait)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            check()
            time.sleep(0.2)
        check()


@contextmanager
def logs_on_failure(fleet: MultiHost) -> Iterator[None]:
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n\n===== logs\n{fleet.logs()}") from None


def available(store: CardStore) -> dict[str, str]:
    return {s.agent: s.host for s in store.agent_statuses() if s.readiness == "available"}


@pytest.fixture
def multihost(tmp_path: Path) -> Iterator[MultiHost]:
    started = time.monotonic()
    with ExitStack() as stack:
        net = stack.enter_context(namespace_network(tuple(AGENTS)))
        hub = stack.enter_context(hub_servers(net))
        hub.create_database("fleet")
        # The schema is migrated once, here, before any host process touches it.
        store = CardStore(hub.local_database_url("fleet"), tenant="default", host="test")
        stack.callback(store.close)
        run = uuid.uuid4().hex[:8]
        hosts = {}
        for label in AGENTS:
            host = FleetHost.create(
                label, tmp_path / label, broker_url=hub.broker_url,
                database_url=hub.database_url("fleet"), socket=f"fq{run}{label[-1]}",
                wrap=FleetHost.in_namespace(net.hosts[label], label),
            )  # fmt: skip
            host.write_roster(ROSTER)
            stack.callback(host.stop)
            hosts[label] = host
        fleet = MultiHost(net, hub, store, hosts)
        with logs_on_failure(fleet):
            for label, host in hosts.items():
                started_agents = sorted(r["agent"] for r in host.start_agents())
                assert started_agents == sorted(names(label)), (label, started_agents)
                host.start_worker()
            hosts["hosta"].start_beat()
            expected = {n: label for label in AGENTS for n in names(label)}
            fleet.wait(
                lambda: available(store) == expected, scaled(90),
                f"every agent reported available by its own host: {expected}",
            )  # fmt: skip
        print(f"multihost fleet up in {time.monotonic() - started:.1f}s")
        yield fleet


def test_cards_go_to_their_hosts_and_survive_a_dead_host_worker(multihost: MultiHost) -> None:
    fleet, store = multihost, multihost.store
    hostb = fleet.hosts["hostb"]
    with logs_on_failure(fleet):
        # 1. Both hosts alive: targeted cards and role cards complete where they belong.
        t0 = time.monotonic()
        store.create_many([
            NewCard(id="to-a0", title="for a0", target_agent="a0"),
            NewCard(id="to-b0", title="for b0", target_agent="b0"),
            NewCard(id="to-b1", title="for b1", target_agent="b1"),
            NewCard(id="review", title="any reviewer", target_class="reviewer"),
            NewCard(id="enhance", title="any enhancer", target_class="enhancer"),
            NewCard(id="impl-1", title="any implementer", target_class="implementer"),
            NewCard(id="impl-2", title="any implementer", target_class="implementer"),
        ])  # fmt: skip
        first = ["to-a0", "to-b0", "to-b1", "review", "enhance", "impl-1", "impl-2"]
        fleet.all_done(first)
        print(f"phase 1: {len(first)} cards done in {time.monotonic() - t0:.1f}s")
        assert fleet.receivers("to-a0") == ["a0@hosta"]
        assert fleet.receivers("to-b0") == ["b0@hostb"]
        assert fleet.receivers("to-b1") == ["b1@hostb"]
        assert fleet.receivers("review") == ["b1@hostb"]
        assert fleet.receivers("enhance") == ["enh@hosta"]
        for card_id in ("impl-1", "impl-2"):
            assert fleet.receivers(card_id)[0] in {"a0@hosta", "b0@hostb"}
        for card_id in first:
            assert fleet.deliveries(card_id) == 1, (card_id, fleet.receivers(card_id))
        for label, host in fleet.hosts.items():
            for agent in names(label):
                assert all(c["exit_code"] == 0 for c in host.commands(agent)), (agent, label)

        # 2. hostb's worker dies holding b0's lease on a role card; a0 is busy (the test
        #    holds its lease). Staged while paused so no tick races the two claims.
        t1 = time.monotonic()
        store.pause("test: staging leases", by="test")
        store.create_many([
            NewCard(id="busy-a0", title="keeps a0 busy", target_agent="a0"),
            NewCard(id="role", title="any implementer", target_class="implementer"),
        ])  # fmt: skip
        held = store.claim("a0", "implementer", "hosta", lease_ttl=120, card_id="busy-a0")
        lost = store.claim("b0", "implementer", "hostb", lease_ttl=lease_ttl(), card_id="role")
        assert held is not None and lost is not None
        hostb.kill("worker")
        store.resume(by="test")
        pinned = ["pin-b0", "pin-b1"]
        # max_attempts 2: a card sent to the dead host twice would end failed.
        store.create_many([
            NewCard(id="pin-b0", title="only b0", target_agent="b0", max_attempts=2),
            NewCard(id="pin-b1", title="only b1", target_agent="b1", max_attempts=2),
        ])  # fmt: skip

        def pinned_wait() -> None:
            for card_id in pinned:
                assert fleet.status(card_id) in {"ready", "claimed"}, (
                    card_id,
                    fleet.status(card_id),
                    fleet.kinds(card_id),
                )
                assert fleet.deliveries(card_id) == 0, (card_id, fleet.receivers(card_id))
                assert "delivered" not in fleet.kinds(card_id), fleet.kinds(card_id)

        fleet.wait(
            lambda: "reclaimed" in fleet.kinds("role"),
            lease_ttl() + scaled(15),
            f"b0's lease on 'role' reclaimed: {fleet.kinds('role')}",
        )
        print(f"phase 2: b0's lease reclaimed {time.monotonic() - t1:.1f}s after the kill")

        def role_not_back_to_hostb() -> None:
            card = store.get("role")
            assert not (card.status == "claimed" and card.lease_owner == "b0"), (
                "the role card went back to b0 on the dead host",
                fleet.kinds("role"),
            )
            assert card.status != "failed", (card.reason, fleet.kinds("role"))
            pinned_wait()

        fleet.hold(lease_ttl() + 2, role_not_back_to_hostb)
        store.complete("busy-a0", held.token, result="the test held a0's lease")
        fleet.wait(
            lambda: fleet.status("role") == "done",
            scaled(30),
            f"'role' done on hosta: {fleet.status('role')} {fleet.kinds('role')}",
        )
        assert fleet.receivers("role") == ["a0@hosta"]
        assert fleet.deliveries("busy-a0") == 0
        fleet.hold(1.0, pinned_wait)
        dead_for = time.monotonic() - t1
        print(f"phase 2: hostb dead {dead_for:.1f}s; pinned cards waited")
        assert dead_for > 2 * lease_ttl()

        # 3. hostb's worker is back: the pinned cards complete there, once each.
        t2 = time.monotonic()
        hostb.start_worker()
        fleet.all_done(pinned, timeout=60)
        print(f"phase 3: pinned cards done {time.monotonic() - t2:.1f}s after the restart")
        assert fleet.receivers("pin-b0") == ["b0@hostb"]
        assert fleet.receivers("pin-b1") == ["b1@hostb"]
        for card_id in [*first, "role", *pinned]:
            assert fleet.deliveries(card_id) == 1, (card_id, fleet.receivers(card_id))
