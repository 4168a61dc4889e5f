"""``fleet doctor`` and ``fleet connector check`` on the chat connector: each line appears
when the roster, the environment, the running fleet or the store give it cause, and not
otherwise. Real roster files, a real store, a real ``fleet up`` lock and state file."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from fleet_queue.connector.adapters import build_adapter
from fleet_queue.connector.base import ChatMessage
from fleet_queue.connector.config import chat_config
from fleet_queue.connector.run_lock import connector_lock, connector_pid_path, running_connector
from fleet_queue.doctor_connector import (
    QUEUED_LONG,
    backlog_problems,
    check_backlog,
    check_running,
    connector_checks,
)
from fleet_queue.errors import ConfigError, ConflictError
from fleet_queue.roster import Roster, load_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from fleet_queue.up_state import UpLock, write_state
from tests.support.cli import run_fleet
from workers.host_checks import connector_unit_active
from workers.systemd_units import user_manager_unavailable

ROOM = "!room:example.org"
MATRIX = {
    "kind": "matrix",
    "homeserver": "https://matrix.example.org",
    "user_id": "@fleet:example.org",
    "rooms": {ROOM: {"allow": ["@alice:example.org"]}},
}
SLACK = {"kind": "slack", "rooms": {"C0123": {"allow": ["U0ALICE"]}}}
CONNECTOR_LINES = {"connector", "connector library", "connector secrets", "connector running"}


def write_roster(
    home: Path, connector: dict[str, Any] | None, orch_host: str | None = None
) -> None:
    orch: dict[str, Any] = {"name": "orch", "runtime": "stub", "class": "orchestrator"}
    if orch_host:
        orch["host"] = orch_host
    data: dict[str, Any] = {
        "agents": [orch, {"name": "enh", "runtime": "stub", "class": "enhancer"}]
    }
    if connector is not None:
        data["connector"] = connector
    path = home / "roster.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)


def never_active() -> bool | None:
    return None


def lines(settings: Settings, store_ok: bool = False) -> dict[str, tuple[str, str, str]]:
    found = connector_checks(settings, store_ok, never_active)
    return {c.name: (c.level, c.detail, c.hint) for c in found}


def roster_of(settings: Settings) -> Roster:
    return load_roster(settings.effective_roster_path)


def test_no_connector_block_no_connector_line(settings: Settings) -> None:
    write_roster(settings.home, None)
    assert lines(settings, store_ok=True) == {}
    write_roster(settings.home, {"kind": "tmux"})  # the old default: no chat network
    assert lines(settings, store_ok=True) == {}


def test_a_bad_block_is_one_failed_line_and_nothing_guessed(settings: Settings) -> None:
    write_roster(settings.home, {**MATRIX, "homeserver": None})
    found = lines(settings, store_ok=True)
    assert list(found) == ["connector"]
    assert found["connector"][:2] == (
        "fail",
        "roster connector.homeserver: required for kind matrix",
    )
    write_roster(settings.home, {**MATRIX, "agent": "nobody"})
    assert lines(settings)["connector"][0] == "fail"


def test_matrix_secrets_missing_then_set(settings: Settings) -> None:
    write_roster(settings.home, MATRIX)
    found = lines(settings)
    assert set(found) == CONNECTOR_LINES  # no store: no backlog line
    assert found["connector"][0] == "ok" and "answering agent orch" in found["connector"][1]
    assert found["connector library"][0] == "ok" and "matrix-nio" in found["connector library"][1]
    assert found["connector secrets"][:2] == (
        "fail",
        "FLEET_MATRIX_PASSWORD or FLEET_MATRIX_TOKEN not set",
    )
    assert "fleet.env" in found["connector secrets"][2]
    with_token = settings.model_copy(update={"matrix_token": SecretStr("syt_x")})
    assert lines(with_token)["connector secrets"][:2] == ("ok", "FLEET_MATRIX_TOKEN set")


def test_slack_names_only_the_token_that_is_missing(settings: Settings) -> None:
    write_roster(settings.home, SLACK)
    level, detail, _ = lines(settings)["connector secrets"]
    assert (level, detail) == ("fail", "FLEET_SLACK_BOT_TOKEN, FLEET_SLACK_APP_TOKEN not set")
    half = settings.model_copy(update={"slack_bot_token": SecretStr("xoxb-1")})
    level, detail, _ = lines(half)["connector secrets"]
    assert (level, detail) == ("fail", "FLEET_SLACK_APP_TOKEN not set")


def test_only_a_secret_problem_is_sent_to_fleet_env(settings: Settings) -> None:
    """The adapter refusing the roster (a Telegram username in the allow-list) says to
    fix the roster, not to set a secret that is set already."""
    block = {"kind": "telegram", "rooms": {"-1001234": {"allow": ["@alice"]}}}
    write_roster(settings.home, block)
    token = settings.model_copy(update={"telegram_token": SecretStr("123:abc")})
    level, detail, hint = lines(token)["connector secrets"]
    assert level == "fail"
    assert detail.startswith("FLEET_TELEGRAM_TOKEN set, but the telegram connector refuses")
    assert "'@alice' is not a Telegram user id" in detail
    assert hint == "fix the roster's connector: block (docs/chat-telegram.md)"
    assert "fleet.env" not in hint
    swapped = {"slack_bot_token": SecretStr("xapp-1"), "slack_app_token": SecretStr("xoxb-1")}
    write_roster(settings.home, SLACK)
    level, detail, hint = lines(settings.model_copy(update=swapped))["connector secrets"]
    assert (level, hint) == (
        "fail",
        "set it in FLEET_HOME/fleet.env, mode 0600 (docs/chat-slack.md)",
    )
    assert detail.startswith("FLEET_SLACK_BOT_TOKEN must be a bot token")


def test_a_missing_library_fails_its_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_roster(settings.home, MATRIX)
    monkeypatch.setitem(sys.modules, "nio", None)  # what Python does when it is not installed
    monkeypatch.delitem(sys.modules, "fleet_queue.connector.matrix", raising=False)
    token = settings.model_copy(update={"matrix_token": SecretStr("syt_x")})
    found = lines(token)
    level, detail, hint = found["connector library"]
    assert level == "fail" and "the matrix connector cannot load" in detail
    assert "fleet-queue[chat]" in hint
    assert found["connector secrets"][0] == "ok"  # the secrets are there; nothing built


def test_a_missing_library_is_one_line_when_the_connector_starts(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fleet connector run`` builds the adapter, which imports its library only then."""
    write_roster(settings.home, MATRIX)
    monkeypatch.setitem(sys.modules, "nio", None)
    token = settings.model_copy(update={"matrix_token": SecretStr("syt_x")})
    config = chat_config(load_roster(token.effective_roster_path))
    assert config is not None
    with pytest.raises(ConfigError, match="the matrix connector cannot load"):
        build_adapter(config, token)


@pytest.fixture
def up_lock(settings: Settings) -> Iterator[UpLock]:
    lock = UpLock.acquire(settings)  # a real flock: running_up sees this process
    yield lock
    lock.release()


def up_row(state: str, restarts: int = 0) -> dict[str, Any]:
    return {"name": "connector", "state": state, "pid": 4242, "restarts": restarts}


def test_running_under_up_restarting_missing_or_nowhere(
    settings: Settings, up_lock: UpLock
) -> None:
    write_roster(settings.home, MATRIX)
    roster = roster_of(settings)
    worker = {"name": "worker", "state": "running", "pid": 1, "restarts": 0}
    write_state(settings, {"children": [worker, up_row("running", 1)]})
    check = check_running(settings, roster, never_active)
    assert check.level == "ok" and "under fleet up" in check.detail and "1 restarts" in check.detail
    write_state(settings, {"children": [up_row("restarting", 3)]})
    check = check_running(settings, roster, never_active)
    assert check.level == "warn" and "restarting under fleet up" in check.detail
    assert "connector.log" in check.hint
    write_state(settings, {"children": [worker]})
    check = check_running(settings, roster, never_active)
    assert check.level == "warn" and "runs without it" in check.detail
    assert check.hint == "fleet down; fleet up"


def test_running_without_up_asks_systemd(settings: Settings) -> None:
    write_roster(settings.home, MATRIX)
    roster = roster_of(settings)
    check = check_running(settings, roster, never_active)
    assert check.level == "warn" and "fleet-connector.service" in check.hint
    check = check_running(settings, roster, lambda: True)
    assert (check.level, check.detail) == ("ok", "fleet-connector.service is active")


def test_a_connector_run_by_hand_is_seen_and_a_second_one_refused(settings: Settings) -> None:
    """``fleet connector run`` holds run/connector.pid: doctor sees it, a second is refused
    in one line (two would both read the room and answer twice), a crash leaves no claim."""
    write_roster(settings.home, MATRIX)
    roster = roster_of(settings)
    with connector_lock(settings):
        check = check_running(settings, roster, never_active)
        assert check.level == "ok" and f"pid {os.getpid()}" in check.detail, check
        assert stat.S_IMODE(connector_pid_path(settings).stat().st_mode) == 0o600
        with (
            pytest.raises(ConflictError, match="a chat connector already runs"),
            connector_lock(settings, wait=0.3),
        ):
            pass
        refused = run_fleet("connector", "run")
        assert refused.exit_code == 4 and refused.stderr.count("\n") == 1, refused
        assert f"a chat connector already runs for {settings.home}" in refused.stderr
    assert running_connector(settings) is None and not connector_pid_path(settings).exists()
    assert check_running(settings, roster, never_active).level == "warn"


def test_a_connector_of_another_host_is_not_missed_here(settings: Settings) -> None:
    write_roster(settings.home, MATRIX, orch_host="hub")
    check = check_running(settings, roster_of(settings), never_active)
    assert check.level == "ok" and "runs on host hub" in check.detail


def test_the_unit_probe_answers_only_with_a_user_systemd() -> None:
    active = connector_unit_active()
    if user_manager_unavailable() is not None:
        assert active is None
    else:
        assert active is False  # no test installs fleet-connector.service


def message(n: int) -> ChatMessage:
    return ChatMessage("matrix", ROOM, "@alice:example.org", f"$e{n}", f"question {n}")


def test_backlog_warns_on_long_waits_and_recent_failures_only(settings: Settings) -> None:
    write_roster(settings.home, MATRIX)
    with CardStore.from_settings(settings) as store:
        first = store.chat_receive(message(1), "orch")
        assert first is not None
        check = check_backlog(settings)
        assert (check.level, check.detail) == (
            "ok",
            "1 open, none waiting long, none failed in the last day",
        )
        second = store.chat_receive(message(2), "orch")
        assert second is not None
        assert store.chat_delivered(second.id, "turn-2", "sha")
        third = store.chat_receive(message(3), "orch")
        assert third is not None and store.chat_failed(third.id, "no reply in 30 min")
        check = check_backlog(settings)
        assert check.level == "warn" and check.hint == "fleet connector status"
        assert check.detail == f"1 failed in the last day (#{third.id}: no reply in 30 min)"

        records = store.chat_list()
        now = store.now().timestamp()
    later = backlog_problems(records, now + QUEUED_LONG + 60, reply_timeout=QUEUED_LONG)
    assert later[0] == f"1 queued for over 10 min (oldest #{first.id}, 11 min)"
    assert later[1] == "1 delivered, no reply sent after 10 min"
    soon = backlog_problems(records, now + QUEUED_LONG - 60, reply_timeout=QUEUED_LONG)
    assert [p for p in soon if "queued" in p or "delivered" in p] == []
    assert backlog_problems(records, now + 2 * 86400, reply_timeout=1e9)[-1].startswith(
        "1 queued"
    )  # a failure two days old is history, not a warning


def doctor_names() -> dict[str, dict[str, str]]:
    run = run_fleet("doctor", "--json")
    report = json.loads(run.stdout)
    return {c["name"]: c for c in report["checks"]}


def test_doctor_json_carries_the_connector_lines(
    fleet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_roster(fleet_home, None)
    assert not CONNECTOR_LINES & set(doctor_names())
    write_roster(fleet_home, MATRIX)
    monkeypatch.setenv("FLEET_MATRIX_TOKEN", "syt_x")
    found = doctor_names()
    assert set(found) >= CONNECTOR_LINES and "chat backlog" not in found  # no store yet
    assert found["connector secrets"]["level"] == "ok"
    settings = Settings(home=fleet_home)
    CardStore.from_settings(settings).close()
    found = doctor_names()
    assert found["chat backlog"]["level"] == "ok"


def test_connector_check_one_line_per_problem_and_its_exit(
    fleet_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_roster(fleet_home, None)
    run = run_fleet("connector", "check")
    assert run.exit_code == 2
    assert run.stderr.strip() == "fleet: the roster configures no chat connector (connector.kind)"
    write_roster(fleet_home, MATRIX)
    run = run_fleet("connector", "check")
    assert run.exit_code == 1
    assert run.stdout.splitlines() == [
        "connector secrets: FLEET_MATRIX_PASSWORD or FLEET_MATRIX_TOKEN not set;"
        " set it in FLEET_HOME/fleet.env, mode 0600 (docs/chat.md)"
    ]
    monkeypatch.setenv("FLEET_MATRIX_PASSWORD", "pw")
    run = run_fleet("connector", "check")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.stdout.startswith("chat connector ready: matrix as @fleet:example.org")
    run = run_fleet("connector", "check", "--json")
    data = json.loads(run.stdout)
    assert data["ok"] is True
    assert [c["name"] for c in data["checks"]] == [
        "connector",
        "connector library",
        "connector secrets",
    ]
