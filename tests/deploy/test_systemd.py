"""Generated systemd user units: valid for systemd-analyze, and they say what we mean.

``systemd-analyze verify --user`` needs only a runtime directory, not a running
systemd, so every unit (the agent template through one instance) is verified
for real. The holder unit's command lines are also run against a real tmux.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_queue.roster import Roster, parse_roster
from fleet_queue.settings import Settings
from workers.linger import linger_state
from workers.systemd_units import (
    AGENT_TEMPLATE,
    BEAT_UNIT,
    BROKER_UNIT,
    CONNECTOR_UNIT,
    TMUX_UNIT,
    WORKER_UNIT,
    fleet_executable,
    local_agents,
    parse_show,
    render_units,
    set_agent_enabled,
    unit_state,
    units_to_enable,
    user_manager_unavailable,
    write_units,
)

SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
REPO = Path(__file__).resolve().parents[2]
FLEET = str(Path(sys.executable).with_name("fleet"))


MATRIX: dict[str, object] = {
    "kind": "matrix",
    "homeserver": "https://matrix.example.org",
    "user_id": "@fleet:example.org",
    "rooms": {"!room:example.org": {"allow": ["@alice:example.org"]}},
}


def make_roster(connector: dict[str, object] | None = None) -> Roster:
    return parse_roster(
        {
            "tmux": {"socket_name": "rostersock", "holder_session": "_hold"},
            "agents": [
                {"name": "orch", "runtime": "stub", "class": "orchestrator"},
                {"name": "enh", "runtime": "stub", "class": "enhancer"},
                {"name": "far", "runtime": "stub", "class": "coder", "host": "other"},
                {"name": "boxed", "runtime": "stub", "class": "coder", "host": "box1"},
                {"name": "acme1", "runtime": "stub", "class": "coder", "tenant_id": "acme"},
            ],
            **({"connector": connector} if connector else {}),
        },
        "test-roster",
    )


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values; systemd allows repeated keys, configparser does not."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line!r}"
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def verify(path: Path, runtime_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir), "SYSTEMD_LOG_LEVEL": "notice"}
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--user", "--man=no", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Path:
    path = tmp_path / "xdg"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def host_settings(settings: Settings) -> Settings:
    secret_url = "postgresql+psycopg://fleet:s3cret-pw@db:5432/fleet"
    return settings.model_copy(update={"host": "box1", "database_url": secret_url})


@pytest.fixture
def unit_dir(tmp_path: Path, host_settings: Settings) -> Path:
    units = render_units(host_settings, make_roster(), fleet=Path(FLEET))
    write_units(units, tmp_path / "units")
    return tmp_path / "units"


def test_five_units_are_written_with_the_embedded_broker(unit_dir: Path) -> None:
    assert sorted(p.name for p in unit_dir.iterdir()) == sorted(
        [TMUX_UNIT, AGENT_TEMPLATE, WORKER_UNIT, BEAT_UNIT, BROKER_UNIT]
    )


@pytest.mark.parametrize(
    "unit", [TMUX_UNIT, WORKER_UNIT, BEAT_UNIT, BROKER_UNIT, "fleet-agent@orch.service"]
)
def test_systemd_analyze_verify_accepts_each_unit(
    unit_dir: Path, runtime_dir: Path, unit: str
) -> None:
    assert Path(SYSTEMD_ANALYZE).exists()
    done = verify(unit_dir / unit, runtime_dir)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # not even a warning (unknown key, bad value)


def test_the_connector_unit_is_written_where_its_agent_runs_and_verifies(
    tmp_path: Path, host_settings: Settings, runtime_dir: Path
) -> None:
    roster = make_roster(MATRIX)
    write_units(render_units(host_settings, roster, fleet=Path(FLEET)), tmp_path / "c")
    done = verify(tmp_path / "c" / CONNECTOR_UNIT, runtime_dir)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    parsed = parse_unit((tmp_path / "c" / CONNECTOR_UNIT).read_text())
    service, unit = parsed["Service"], parsed["Unit"]
    assert service["ExecStart"] == [f"{FLEET} connector run"]
    assert service["Restart"] == ["on-failure"] and float(service["RestartSec"][0]) >= 5
    assert service["EnvironmentFile"] == [f"-{host_settings.home}/fleet.env"]
    env = dict(shlex.split(v)[0].split("=", 1) for v in service["Environment"])
    assert env["FLEET_HOME"] == str(host_settings.home) and env["FLEET_HOST"] == "box1"
    for wanted in (TMUX_UNIT, WORKER_UNIT, "fleet-agent@orch.service", BROKER_UNIT):
        assert wanted in unit["Wants"] and wanted in unit["After"], wanted
    assert CONNECTOR_UNIT in units_to_enable(host_settings, roster, beat=False)


def test_no_connector_unit_without_a_connector_or_where_its_agent_does_not_run(
    host_settings: Settings,
) -> None:
    assert CONNECTOR_UNIT not in render_units(host_settings, make_roster(), fleet=Path(FLEET))
    assert CONNECTOR_UNIT not in units_to_enable(host_settings, make_roster(), beat=True)
    elsewhere = make_roster({**MATRIX, "agent": "far"})  # answers on host "other"
    assert CONNECTOR_UNIT not in render_units(host_settings, elsewhere, fleet=Path(FLEET))
    assert CONNECTOR_UNIT not in units_to_enable(host_settings, elsewhere, beat=True)
    boxed = make_roster({**MATRIX, "agent": "boxed"})
    text = render_units(host_settings, boxed, fleet=Path(FLEET))[CONNECTOR_UNIT]
    assert "Wants=fleet-agent@boxed.service" in text


def test_a_bad_connector_block_is_one_line_and_writes_no_unit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "roster.yaml").write_text(make_roster({**MATRIX, "homeserver": None}).to_yaml())
    done = fleet_cli(tmp_path, "--unit-dir", str(tmp_path / "u"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "fleet: roster connector.homeserver: required for kind matrix"
    assert not (tmp_path / "u").exists()


def test_verify_is_not_a_no_op(tmp_path: Path, host_settings: Settings, runtime_dir: Path) -> None:
    units = render_units(host_settings, make_roster(), fleet=tmp_path / "missing" / "fleet")
    write_units(units, tmp_path / "bad")
    done = verify(tmp_path / "bad" / "fleet-agent@orch.service", runtime_dir)
    assert done.returncode != 0
    assert "is not executable" in done.stderr


def test_awkward_home_paths_are_escaped(
    tmp_path: Path, settings: Settings, runtime_dir: Path
) -> None:
    odd = settings.model_copy(update={"home": tmp_path / "my 100% $HOME"})
    write_units(render_units(odd, make_roster(), fleet=Path(FLEET)), tmp_path / "odd")
    for unit in (TMUX_UNIT, WORKER_UNIT, "fleet-agent@orch.service"):
        done = verify(tmp_path / "odd" / unit, runtime_dir)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
    text = (tmp_path / "odd" / WORKER_UNIT).read_text()
    assert f'Environment="FLEET_HOME={tmp_path}/my 100%% $$HOME"' in text


@pytest.mark.parametrize("unit", [TMUX_UNIT, AGENT_TEMPLATE, WORKER_UNIT, BEAT_UNIT, BROKER_UNIT])
def test_each_unit_restarts_starts_at_boot_and_runs_absolute_executables(
    unit_dir: Path, unit: str
) -> None:
    parsed = parse_unit((unit_dir / unit).read_text())
    assert set(parsed) == {"Unit", "Service", "Install"}
    assert parsed["Install"]["WantedBy"] == ["default.target"]
    assert parsed["Service"]["Restart"][0] in ("always", "on-failure")
    for key in ("ExecStartPre", "ExecStart", "ExecStop"):
        for line in parsed["Service"].get(key, []):
            exe = Path(shlex.split(line.lstrip("-"))[0])
            assert exe.is_absolute() and exe.is_file() and os.access(exe, os.X_OK), line


def test_fleet_units_run_the_fleet_verbs_with_settings_and_the_secrets_file(
    unit_dir: Path, host_settings: Settings
) -> None:
    expected = {
        AGENT_TEMPLATE: ([f"{FLEET} start --wait %i"], [f"{FLEET} stop %i"]),
        WORKER_UNIT: ([f"{FLEET} worker"], []),
        BROKER_UNIT: ([f"{FLEET} broker"], []),
        BEAT_UNIT: ([f"{FLEET} beat"], []),
    }
    for unit, (start, stop) in expected.items():
        service = parse_unit((unit_dir / unit).read_text())["Service"]
        assert service["ExecStart"] == start
        assert service.get("ExecStop", []) == stop
        assert service["EnvironmentFile"] == [f"-{host_settings.home}/fleet.env"]
        env = dict(shlex.split(v)[0].split("=", 1) for v in service["Environment"])
        assert env["FLEET_HOME"] == str(host_settings.home)
        assert env["FLEET_HOST"] == "box1"
        assert env["FLEET_TMUX_SOCKET"] == host_settings.tmux_socket


def test_systemd_watches_the_agent_not_a_oneshot(unit_dir: Path) -> None:
    service = parse_unit((unit_dir / AGENT_TEMPLATE).read_text())["Service"]
    assert service["Type"] == ["simple"] and "RemainAfterExit" not in service
    assert service["Restart"] == ["on-failure"]


def test_worker_and_beat_want_the_embedded_broker_and_start_after_it(unit_dir: Path) -> None:
    for unit in (WORKER_UNIT, BEAT_UNIT):
        section = parse_unit((unit_dir / unit).read_text())["Unit"]
        assert BROKER_UNIT in section["Wants"] and BROKER_UNIT in section["After"], unit
    broker = parse_unit((unit_dir / BROKER_UNIT).read_text())["Service"]
    assert broker["Restart"] == ["always"] and broker["UMask"] == ["0077"]


def test_an_external_broker_gets_no_broker_unit(tmp_path: Path, host_settings: Settings) -> None:
    external = host_settings.model_copy(update={"broker_url": "redis://hub:6379/0"})
    units = render_units(external, make_roster(), fleet=Path(FLEET))
    assert BROKER_UNIT not in units and BROKER_UNIT not in units[WORKER_UNIT]
    assert BROKER_UNIT not in units_to_enable(external, make_roster(), beat=True)


def test_linger_is_read_from_loginctl_and_explained() -> None:
    linger, why = linger_state()
    done = subprocess.run(
        ["loginctl", "show-user", os.environ.get("USER") or "root", "-p", "Linger", "--value"],
        capture_output=True,
        text=True,
    )
    if done.returncode == 0:
        assert linger is (done.stdout.strip() == "yes") and why == ""
    else:
        assert linger is None and why


def test_agent_units_need_the_tmux_server(unit_dir: Path) -> None:
    unit = parse_unit((unit_dir / AGENT_TEMPLATE).read_text())["Unit"]
    assert unit["Requires"] == [TMUX_UNIT]
    assert unit["After"] == [TMUX_UNIT]


def test_no_secret_and_no_fleet_variable_reaches_the_tmux_server(unit_dir: Path) -> None:
    for path in unit_dir.iterdir():
        assert "s3cret-pw" not in path.read_text(), path.name
    tmux = parse_unit((unit_dir / TMUX_UNIT).read_text())["Service"]
    assert not any("FLEET_" in value for value in tmux.get("Environment", []))
    assert "EnvironmentFile" not in tmux


def test_the_holder_unit_commands_start_hold_and_stop_a_real_tmux_server(
    unit_dir: Path, host_settings: Settings
) -> None:
    service = parse_unit((unit_dir / TMUX_UNIT).read_text())["Service"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "TMUX"))}
    env.update(dict(shlex.split(v)[0].split("=", 1) for v in service["Environment"]))

    def run(line: str) -> int:
        return subprocess.run(
            shlex.split(line.lstrip("-")), env=env, capture_output=True, timeout=30
        ).returncode

    try:
        for line in service["ExecStartPre"] + service["ExecStart"]:
            assert run(line) == 0, line
        # a second start, with the server already up, still succeeds
        starts = service["ExecStart"]
        assert run(starts[0]) != 0 and starts[0].startswith("-")
        assert run(starts[1]) == 0
        socket = host_settings.run_dir / f"tmux-{os.getuid()}" / host_settings.tmux_socket
        assert socket.exists()
        assert (socket.parent.stat().st_mode & 0o777) == 0o700
    finally:
        for line in service["ExecStop"]:
            run(line)
    assert run(service["ExecStart"][1]) != 0  # the holder is gone with the server


def test_the_roster_socket_is_used_when_no_fleet_tmux_socket_is_set(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h", host="box1")
    text = render_units(settings, make_roster(), fleet=Path(FLEET))[TMUX_UNIT]
    assert " -L rostersock " in text
    assert "has-session -t =_hold" in text


def test_only_this_hosts_agents_of_this_tenant_are_enabled(host_settings: Settings) -> None:
    roster = make_roster()
    assert local_agents(host_settings, roster) == ["orch", "enh", "boxed"]
    assert units_to_enable(host_settings, roster, beat=False) == [
        BROKER_UNIT,
        TMUX_UNIT,
        WORKER_UNIT,
        "fleet-agent@orch.service",
        "fleet-agent@enh.service",
        "fleet-agent@boxed.service",
    ]
    assert BEAT_UNIT in units_to_enable(host_settings, roster, beat=True)


def test_fleet_executable_is_an_absolute_existing_file() -> None:
    exe = fleet_executable()
    assert exe.is_absolute() and exe.name == "fleet" and os.access(exe, os.X_OK)


def test_parse_show_flags_active_but_not_enabled() -> None:
    state = parse_show("ActiveState=active\nUnitFileState=disabled\n")
    assert (state.active, state.enabled) == (True, False)
    state = parse_show("ActiveState=inactive\nUnitFileState=enabled\n")
    assert (state.active, state.enabled) == (False, True)


def test_unit_state_is_none_exactly_when_there_is_no_user_systemd() -> None:
    state = unit_state("orch")
    assert (state is None) == (user_manager_unavailable() is not None)


def test_set_agent_enabled_says_why_when_there_is_no_user_systemd() -> None:
    reason = user_manager_unavailable()
    if reason is not None:
        assert set_agent_enabled("orch", True) == reason
        assert set_agent_enabled("orch", False) == reason


# ---------------------------------------------------------------- CLI


def write_roster_file(home: Path) -> None:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as fleet makes it
    (home / "roster.yaml").write_text(make_roster().to_yaml())


def fleet_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(
        {"HOME": str(tmp_path / "user"), "FLEET_HOME": str(tmp_path / "home"), "FLEET_HOST": "box1"}
    )
    return subprocess.run(
        [FLEET, "install-systemd", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_writes_units_and_enables_or_says_why_not(tmp_path: Path) -> None:
    write_roster_file(tmp_path / "home")
    done = fleet_cli(tmp_path, "--enable")
    assert done.returncode == 0, done.stderr
    unit_dir = tmp_path / "user" / ".config" / "systemd" / "user"
    assert (unit_dir / AGENT_TEMPLATE).is_file()
    linger, _ = linger_state()
    assert ("linger is on" if linger else "loginctl enable-linger") in done.stdout
    reason = user_manager_unavailable()
    if reason is None:
        assert "enabled: fleet-tmux.service" in done.stdout
    else:
        assert f"fleet: not enabled: {reason}" in done.stderr
        assert "systemctl --user enable --now fleet-broker.service fleet-tmux" in done.stderr


def test_cli_json(tmp_path: Path) -> None:
    import json

    write_roster_file(tmp_path / "home")
    done = fleet_cli(tmp_path, "--unit-dir", str(tmp_path / "u"), "--json", "--no-beat")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["unit_dir"] == str(tmp_path / "u")
    assert len(data["written"]) == 5 and data["enabled"] == []
    assert data["linger"] == linger_state()[0]
    assert BEAT_UNIT not in data["to_enable"]


def test_cli_refuses_enable_outside_the_user_unit_dir_and_writes_nothing(tmp_path: Path) -> None:
    write_roster_file(tmp_path / "home")
    done = fleet_cli(tmp_path, "--enable", "--unit-dir", str(tmp_path / "u"))
    assert done.returncode == 2
    assert done.stderr.startswith("fleet: --enable needs the units in")
    assert not (tmp_path / "u").exists()


def test_cli_bad_roster_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir(mode=0o700)
    (tmp_path / "home" / "roster.yaml").write_text("agents: [{name: x}]\n")
    done = fleet_cli(tmp_path, "--unit-dir", str(tmp_path / "u"))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "u").exists()
