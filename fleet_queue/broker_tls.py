"""TLS for every Redis client the fleet creates: verified unless the operator opts out.

kombu connects to a ``rediss://`` URL without ``ssl_cert_reqs`` with verification *off*
(it logs a warning and sets ``CERT_NONE``), while redis-py verifies by default: the same
URL was checked by ``fleet``'s ping and then trusted blindly by the worker, beat and
Flower. So the fleet never lets a client library choose: :func:`broker_target` reads the
URL's ``ssl_*`` query parameters and the settings once, takes them out of the URL, and
every client gets the same explicit options (redis-py's ``SSLConnection`` keywords, which
are also what Celery's ``broker_use_ssl`` and ``redis_backend_use_ssl`` hand to it):

- verification **on** (``CERT_REQUIRED`` and the host name checked) by default;
- **off** only by ``?ssl_cert_reqs=none`` in the URL or ``FLEET_BROKER_TLS_VERIFY=false``,
  and then one warning line per process on stderr;
- the CA bundle from ``?ssl_ca_certs=`` or ``FLEET_BROKER_CA_FILE`` (else the system's).
"""

from __future__ import annotations

import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fleet_queue.errors import ConfigError
from fleet_queue.settings import Settings, mask_url

TLS_SCHEME = "rediss"
PASSED_THROUGH = ("ssl_certfile", "ssl_keyfile", "ssl_ca_path")
"""``ssl_*`` query parameters handed on as they are (a client certificate for mutual TLS)."""
VERIFY_WORDS = {
    "required": True,
    "cert_required": True,
    "optional": True,  # a client context verifies a certificate the server always sends
    "cert_optional": True,
    "none": False,
    "cert_none": False,
}


@dataclass(frozen=True)
class BrokerTarget:
    """Where the broker is (``url`` without ``ssl_*`` parameters) and how to reach it."""

    url: str
    tls: dict[str, Any] | None = field(default=None)
    """redis-py ``SSLConnection`` keywords; None for a plain or unix-socket broker."""

    @property
    def verified(self) -> bool:
        return self.tls is not None and self.tls["ssl_cert_reqs"] == ssl.CERT_REQUIRED


def broker_target(settings: Settings) -> BrokerTarget:
    """The broker URL and the TLS options every client of it must use."""
    return target_for_url(settings.effective_broker_url, settings)


def target_for_url(url: str, settings: Settings) -> BrokerTarget:
    """:func:`broker_target` for an explicit URL (``workers.healthcheck --broker``)."""
    parts = urlsplit(url)
    if parts.scheme != TLS_SCHEME:
        return BrokerTarget(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ssl_params = {key: value for key, value in query if key.startswith("ssl_")}
    rest = [(key, value) for key, value in query if not key.startswith("ssl_")]
    plain_url = urlunsplit(parts._replace(query=urlencode(rest)))
    verify = _verify(ssl_params, settings, url)
    ca_file = ssl_params.get("ssl_ca_certs") or (
        str(settings.broker_ca_file) if settings.broker_ca_file else None
    )
    if ca_file is not None and verify and not Path(ca_file).is_file():
        raise ConfigError(f"broker CA file {ca_file} does not exist (FLEET_BROKER_CA_FILE)")
    tls: dict[str, Any] = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED if verify else ssl.CERT_NONE,
        "ssl_check_hostname": verify,
        "ssl_ca_certs": ca_file if verify else None,
    }
    tls.update({key: ssl_params[key] for key in PASSED_THROUGH if ssl_params.get(key)})
    if not verify:
        warn_unverified(url)
    return BrokerTarget(plain_url, tls)


def _verify(ssl_params: dict[str, str], settings: Settings, url: str) -> bool:
    word = ssl_params.get("ssl_cert_reqs")
    if word is not None and word.lower() not in VERIFY_WORDS:
        choices = ", ".join(sorted(w for w in VERIFY_WORDS if "_" not in w))
        raise ConfigError(
            f"FLEET_BROKER_URL: ssl_cert_reqs={word!r} in {mask_url(url)} is not one of {choices}"
        )
    by_url = VERIFY_WORDS[word.lower()] if word is not None else True
    return by_url and settings.broker_tls_verify


_warned: set[str] = set()


def warn_unverified(url: str) -> None:
    """One line per process and URL: a broker whose certificate nobody checks."""
    shown = mask_url(url)
    if shown in _warned:
        return
    _warned.add(shown)
    print(
        f"fleet: warning: TLS to the broker {shown} is not verified (ssl_cert_reqs=none or"
        " FLEET_BROKER_TLS_VERIFY=false): anyone on the path can read and forge deliveries",
        file=sys.stderr,
        flush=True,
    )


def celery_tls_options(settings: Settings) -> dict[str, Any]:
    """Celery settings for the broker's TLS (empty for a plain broker)."""
    target = broker_target(settings)
    if target.tls is None:
        return {"broker_url": target.url}
    return {
        "broker_url": target.url,
        "broker_use_ssl": dict(target.tls),
        "redis_backend_use_ssl": dict(target.tls),
    }
