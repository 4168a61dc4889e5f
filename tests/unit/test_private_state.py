"""Private state: what fleet-queue creates is 0700 (directories) and 0600 (files).

The fresh home is made by the real ``fleet`` entry point under a permissive umask (022,
the usual login default), so the modes come from fleet-queue and not from the test.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_queue.broker import broker_reachable, start_embedded_broker
from fleet_queue.errors import ConfigError
from fleet_queue.private import ensure_private_dir, private_umask, write_private
from fleet_queue.settings import Settings, load_settings
from tests.support.cli import run_fleet


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _modes_under(root: Path) -> dict[str, int]:
    found = {".": _mode(root)}
    for path in root.rglob("*"):
        if not path.is_socket():
            found[str(path.relative_to(root))] = _mode(path)
    return found


def _open_ones(modes: dict[str, int], root: Path) -> list[str]:
    return [
        f"{name} {mode:04o}"
        for name, mode in modes.items()
        if mode != (0o700 if (root / name).is_dir() else 0o600)
    ]


@pytest.fixture
def login_umask() -> Iterator[None]:
    """A login shell's umask while the test runs; the process's own restored after."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_fresh_home_made_by_the_cli_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, login_umask: None
) -> None:
    home = tmp_path / "fresh" / "home"
    monkeypatch.setenv("FLEET_HOME", str(home))
    os.umask(0o022)
    assert run_fleet("init", "--profile", "coding", "--write").exit_code == 0
    os.umask(0o022)  # each command must set its own mask, not rely on the one before
    created = run_fleet("backlog", "create", "--id", "a1", "--title", "first card")
    assert created.exit_code == 0, created.stderr
    os.umask(0o022)
    assert run_fleet("pause", "--reason", "test").exit_code == 0
    modes = _modes_under(home)
    assert {"roster.yaml", "fleet.db", "run", "run/PAUSED"} <= set(modes), modes
    assert not _open_ones(modes, home), modes


def test_the_embedded_brokers_files_are_private(settings: Settings, login_umask: None) -> None:
    """What redis-server writes (AOF, log) inherits the entry point's umask."""
    private_umask()
    broker = start_embedded_broker(settings)
    assert broker is not None and broker_reachable(settings)
    try:
        modes = _modes_under(settings.home)
    finally:
        broker.stop()
    assert any(name.startswith("redis/") for name in modes), modes
    assert not _open_ones(modes, settings.home), modes


def test_private_helpers_hold_under_any_umask(tmp_path: Path, login_umask: None) -> None:
    os.umask(0)
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    assert _mode(ensure_private_dir(loose)) == 0o700
    assert _mode(ensure_private_dir(tmp_path / "new" / "dir")) == 0o700
    target = tmp_path / "new" / "dir" / "state.txt"
    write_private(target, "one")
    write_private(target, "two")  # replaced atomically, still private
    assert target.read_text() == "two" and _mode(target) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.txt"]


def test_a_fleet_env_others_can_read_is_refused(fleet_home: Path) -> None:
    env_file = fleet_home / "fleet.env"
    env_file.write_text("FLEET_DATABASE_URL=postgresql+psycopg://a:pw@db/x\n")
    env_file.chmod(0o644)
    with pytest.raises(ConfigError, match=r"fleet.env .* chmod 600"):
        load_settings()
    run = run_fleet("config")
    assert run.exit_code != 0 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "chmod 600" in run.stderr
    env_file.chmod(0o600)
    assert load_settings().effective_database_url == "postgresql+psycopg://a:pw@db/x"


def _doctor_modes() -> tuple[dict[str, str], str]:
    run = run_fleet("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(run.stdout)["checks"]}
    return checks["state modes"], run.stderr


def test_an_open_home_is_warned_and_doctor_reports_modes(fleet_home: Path) -> None:
    fleet_home.chmod(0o755)
    check, stderr = _doctor_modes()
    assert "warning: FLEET_HOME" in stderr and "chmod 700" in stderr
    assert check["level"] == "warn" and "group or others" in check["detail"]
    fleet_home.chmod(0o700)
    check, stderr = _doctor_modes()
    assert "warning" not in stderr
    assert check["level"] == "ok" and "home 0700" in check["detail"]


def test_doctor_fails_on_an_open_socket_directory(fleet_home: Path) -> None:
    socket_dir = fleet_home / "run" / f"tmux-{os.getuid()}"
    socket_dir.mkdir(parents=True, mode=0o700)
    socket_dir.chmod(0o750)
    fleet_home.chmod(0o700)
    (fleet_home / "run").chmod(0o700)
    check, _ = _doctor_modes()
    assert check["level"] == "fail" and f"tmux-{os.getuid()} is accessible" in check["detail"]
