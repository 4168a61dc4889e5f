"""``rediss://`` is verified by every client the fleet makes, against a real TLS redis-server.

Right CA: pings and nudges reach the broker. Wrong CA, or a certificate for another name:
refused. Opting out (``?ssl_cert_reqs=none``, ``FLEET_BROKER_TLS_VERIFY=false``) connects
and warns once. The worker's side is in ``tests/e2e/test_broker_tls.py``.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fleet_queue import broker_tls, nudge
from fleet_queue.broker import broker_reachable, redis_client
from fleet_queue.broker_tls import broker_target
from fleet_queue.celery_config import celery_config
from fleet_queue.errors import ConfigError
from fleet_queue.nudge import nudge_tick
from fleet_queue.queues import control_queue
from fleet_queue.settings import Settings
from tests.support.tls import Pki, TlsRedis, make_pki, tls_redis_server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(pki: Pki) -> Iterator[TlsRedis]:
    with tls_redis_server(pki.server, pki.ca) as srv:
        yield srv


@pytest.fixture(scope="module")
def wrong_name_server(pki: Pki) -> Iterator[TlsRedis]:
    with tls_redis_server(pki.wrong_name, pki.ca) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_clients() -> None:
    """Each test builds its own clients and sees its own first warning."""
    nudge._clients.clear()
    broker_tls._warned.clear()


def _settings(home: Path, url: str, **extra: object) -> Settings:
    return Settings(home=home, broker_url=url, host="testhost", **extra)  # type: ignore[arg-type]


def _ca_query(ca: Path) -> str:
    return f"ssl_ca_certs={ca}"


def test_the_right_ca_connects_ping_and_nudge(
    fleet_home: Path, pki: Pki, server: TlsRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(fleet_home, server.url(), broker_ca_file=pki.ca)
    assert broker_reachable(settings)
    client = redis_client(settings)
    client.delete(control_queue(settings.tenant))
    assert nudge_tick(settings, reason="created")
    queued = client.lrange(control_queue(settings.tenant), 0, -1)
    assert len(queued) == 1 and json.loads(queued[0])["headers"]["task"].endswith("tick")
    assert "warning" not in capsys.readouterr().err


def test_the_ca_in_the_url_connects(fleet_home: Path, pki: Pki, server: TlsRedis) -> None:
    assert broker_reachable(_settings(fleet_home, server.url(_ca_query(pki.ca))))


@pytest.mark.parametrize("where", ["setting", "url"])
def test_a_wrong_ca_is_refused(fleet_home: Path, pki: Pki, server: TlsRedis, where: str) -> None:
    settings = (
        _settings(fleet_home, server.url(), broker_ca_file=pki.other_ca)
        if where == "setting"
        else _settings(fleet_home, server.url(_ca_query(pki.other_ca)))
    )
    assert not broker_reachable(settings)
    assert not nudge_tick(settings)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis_client(settings).ping()


def test_the_system_cas_do_not_trust_a_private_ca(fleet_home: Path, server: TlsRedis) -> None:
    """No CA given: the system's bundle, which does not hold the test CA."""
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis_client(_settings(fleet_home, server.url())).ping()


def test_a_certificate_for_another_name_is_refused(
    fleet_home: Path, pki: Pki, wrong_name_server: TlsRedis
) -> None:
    settings = _settings(fleet_home, wrong_name_server.url(), broker_ca_file=pki.ca)
    assert not broker_reachable(settings)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis_client(settings).ping()


@pytest.mark.parametrize("how", ["ssl_cert_reqs=none", "FLEET_BROKER_TLS_VERIFY=false"])
def test_opting_out_connects_and_warns_once(
    fleet_home: Path, pki: Pki, server: TlsRedis, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    if how.startswith("ssl_"):
        settings = _settings(fleet_home, server.url(how))
    else:
        settings = _settings(fleet_home, server.url(), broker_tls_verify=False)
    assert broker_reachable(settings)
    assert broker_reachable(settings)
    assert nudge_tick(settings) in (True, False)  # sent, or debounced by the key above
    err = capsys.readouterr().err
    assert err.count("is not verified") == 1, err
    assert server.password not in err


def test_celery_gets_verification_on_and_the_url_without_ssl_parameters(
    fleet_home: Path, pki: Pki
) -> None:
    config = celery_config(
        _settings(fleet_home, f"rediss://:pw@hub:6380/0?{_ca_query(pki.ca)}&foo=1")
    )
    assert config["broker_url"] == "rediss://:pw@hub:6380/0?foo=1"
    for key in ("broker_use_ssl", "redis_backend_use_ssl"):
        assert config[key]["ssl_cert_reqs"] == ssl.CERT_REQUIRED
        assert config[key]["ssl_check_hostname"] is True
        assert config[key]["ssl_ca_certs"] == str(pki.ca)


def test_a_plain_broker_gets_no_tls(fleet_home: Path) -> None:
    config = celery_config(_settings(fleet_home, "redis://hub:6379/0"))
    assert "broker_use_ssl" not in config
    assert not broker_target(_settings(fleet_home, "redis://hub:6379/0")).verified


def test_a_bad_ssl_cert_reqs_word_and_a_missing_ca_are_refused(fleet_home: Path) -> None:
    with pytest.raises(ConfigError, match="ssl_cert_reqs='maybe'"):
        broker_target(_settings(fleet_home, "rediss://:pw@hub:6380/0?ssl_cert_reqs=maybe"))
    with pytest.raises(ConfigError, match="does not exist"):
        broker_target(_settings(fleet_home, "rediss://hub:6380/0?ssl_ca_certs=/nonexistent.pem"))
