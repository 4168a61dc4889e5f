"""The host worker, beat and nudges over a real TLS redis-server: a card flows with the
right CA, and a worker given the wrong CA never connects (kombu alone would have
connected with verification off)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_queue.cards import CardStatus, NewCard
from fleet_queue.celery_control import control_app, ping_node
from fleet_queue.composition import open_card_store
from fleet_queue.processes import FleetProcesses
from fleet_queue.queues import node_name
from fleet_queue.settings import Settings
from tests.support.fleet import fleet_settings, running_fleet, stub_roster
from tests.support.poll import wait_until
from tests.support.timing import scaled
from tests.support.tls import Pki, TlsRedis, make_pki, tls_redis_server

pytestmark = pytest.mark.e2e

TEAM = [("lead", "orchestrator"), ("c0", "implementer")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(pki: Pki) -> Iterator[TlsRedis]:
    with tls_redis_server(pki.server, pki.ca) as srv:
        yield srv


def _settings(tmp_path: Path, settings: Settings, url: str) -> Settings:
    return fleet_settings(tmp_path / "fleet", url, settings.tmux_socket)


def test_a_card_flows_over_verified_tls(
    tmp_path: Path, settings: Settings, pki: Pki, server: TlsRedis
) -> None:
    tls = _settings(tmp_path, settings, server.url(f"ssl_ca_certs={pki.ca}"))
    with running_fleet(tls, stub_roster(TEAM)) as fleet:
        with open_card_store(tls) as store:  # its nudge goes over TLS too
            store.create(NewCard(id="t1", title="over tls", target_agent="c0"))
        wait_until(
            lambda: fleet.store.get("t1").status is CardStatus.DONE, scaled(60), what="t1 done"
        )
    assert fleet.deliveries_of("t1") == 1
    log = (tls.home / "logs" / "worker.log").read_text(errors="replace")
    assert "insecure SSL" not in log  # kombu's warning when it turns verification off


@pytest.mark.parametrize("case", ["wrong CA", "certificate for another name"])
def test_a_worker_that_cannot_verify_never_connects(
    tmp_path: Path, settings: Settings, pki: Pki, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    shown, ca = (pki.server, pki.other_ca) if case == "wrong CA" else (pki.wrong_name, pki.ca)
    with tls_redis_server(shown, pki.ca) as server:
        wrong = _settings(tmp_path, settings, server.url(f"ssl_ca_certs={ca}"))
        monkeypatch.setenv("FLEET_BROKER_URL", str(wrong.broker_url))  # the worker reads it
        processes = FleetProcesses(wrong, with_beat=False, concurrency=1)
        log = wrong.home / "logs" / "worker.log"
        try:
            processes.start()
            wait_until(
                lambda: "certificate verify failed" in _text(log),
                scaled(60),
                what="the worker's certificate failure in its log",
            )
            # asked over a connection that skips verification, the node is not there
            unverified = _settings(tmp_path, settings, server.url("ssl_cert_reqs=none"))
            node = node_name(unverified.tenant, unverified.host)
            assert not ping_node(control_app(unverified), node)
        finally:
            processes.stop()


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
