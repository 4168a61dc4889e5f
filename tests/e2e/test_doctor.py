"""``fleet doctor`` on a running fleet and on a bare home; it changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet_queue.cli import app as cli
from tests.support.fleet import Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def doctor(env: dict[str, str]) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli, ["doctor", "--json"], env=env)
    return result.exit_code, json.loads(result.stdout)


def levels(report: dict[str, object]) -> dict[str, str]:
    return {c["name"]: c["level"] for c in report["checks"]}  # type: ignore[attr-defined]


def test_a_running_fleet_is_healthy(team: Fleet) -> None:
    env = {
        "FLEET_HOME": str(team.settings.home),
        "FLEET_BROKER_URL": str(team.settings.broker_url),
        "FLEET_HOST": team.settings.host,
        "FLEET_TMUX_SOCKET": team.settings.tmux_socket,
    }
    code, report = doctor(env)
    assert code == 0 and report["ok"] is True
    assert levels(report) == {
        "roster": "ok",
        "store": "ok",
        "broker": "ok",
        "host worker": "ok",
        "beat": "ok",
        "pause": "ok",
        "targets": "ok",
        "tmux": "ok",
        "runtimes": "ok",
        "host pause": "ok",
        "state modes": "ok",
    }, [c for c in report["checks"] if c["level"] != "ok"]  # type: ignore[attr-defined]
    team.store.pause(reason="drill", by="test")
    code, report = doctor(env)
    assert code == 0 and levels(report)["pause"] == "warn"  # a warning is not a failure


def test_a_bare_home_fails_in_one_report_and_nothing_is_created(tmp_path: Path) -> None:
    home = tmp_path / "bare"
    home.mkdir()
    code, report = doctor({"FLEET_HOME": str(home)})
    assert code == 1 and report["ok"] is False
    found = levels(report)
    assert found["roster"] == "fail" and found["broker"] == "fail"
    assert found["store"] == "warn"
    checks = {c["name"]: c for c in report["checks"]}  # type: ignore[attr-defined]
    assert "fleet init" in checks["roster"]["detail"]
    assert "fleet up" in checks["broker"]["hint"]
    assert sorted(p.name for p in home.iterdir()) == []  # read-only: no store, no run/
