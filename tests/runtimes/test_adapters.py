"""The Claude Code and Codex adapters against the real CLIs in tmux, on the model double.

What ``fleet start`` refuses (one line, non-zero, nothing started), what it prepares,
what the hooks and the rollout report, and the paste/Enter timing each TUI needs.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_queue.errors import HostError
from fleet_queue.model_double import ModelDouble, Reply, ToolCall
from fleet_queue.roster import Roster, parse_roster
from fleet_queue.settings import Settings
from tests.runtimes.conftest import KEY, RUNTIME_BIN, runtime_binary
from tests.support.cli import run_fleet
from tests.support.poll import wait_until
from workers import evidence
from workers.heartbeat import read_heartbeat, utcnow
from workers.probe import probe_agents
from workers.runtimes import LaunchPlan, check_launchable, launch_plan
from workers.sessions import start_agents, stop_agents
from workers.tmux import TmuxServer, pane_target

pytestmark = [pytest.mark.tmux, pytest.mark.runtime]

START_TIMEOUT = 60.0  # a CLI's first screen takes 1-3 s here; room for a loaded machine
TURN_TIMEOUT = 60.0


def agent(name: str, runtime: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "runtime": runtime, "class": "coder", **extra}


def roster_of(*agents: dict[str, Any], **extra: Any) -> Roster:
    return parse_roster({"preset": "minimal", "agents": list(agents), **extra})


@pytest.fixture
def rt_settings(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """This test's fleet; the CLIs and ``fleet`` on PATH, keys in the environment."""
    runtime_binary("claude")
    runtime_binary("codex")
    venv_bin = Path(sys.executable).parent
    monkeypatch.setenv("PATH", f"{RUNTIME_BIN}:{venv_bin}:/usr/local/bin:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path / "userhome"))
    (tmp_path / "userhome").mkdir()
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("FLEET_TMUX_SOCKET", settings.tmux_socket or "")
    monkeypatch.setenv("FLEET_HOST", settings.host)
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    (tmp_path / "work").mkdir()
    return settings.model_copy(update={"heartbeat_interval": 0.5})


@pytest.fixture
def double() -> Iterator[ModelDouble]:
    with ModelDouble() as server:
        yield server


def workdir(settings: Settings) -> str:
    return str(settings.home.parent / "work")


def write(settings: Settings, roster: Roster) -> None:
    path = settings.home / "roster.yaml"
    path.write_text(roster.to_yaml(), encoding="utf-8")


def sessions(settings: Settings) -> list[str]:
    server = TmuxServer.for_fleet(settings, None)
    return server.session_names() if server.is_running() else []


# --- what fleet start refuses -------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("root", "refuses --dangerously-skip-permissions as root"),
        ("no-binary", "binary 'no-such-claude' not found on PATH"),
        ("no-claude-key", "needs ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN set"),
        ("no-codex-key", "needs OPENAI_API_KEY set"),
        ("bad-config-dir", "CLAUDE_CONFIG_DIR"),
    ],
)
def test_fleet_start_refuses_in_one_line_and_starts_nothing(
    rt_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    case: str,
    expect: str,
) -> None:
    assert os.geteuid() == 0, "the suite runs as root (the non-root case is its own test)"
    sandbox = {"IS_SANDBOX": "1"}
    spec: dict[str, Any] = agent("c1", "claude", working_directory=workdir(rt_settings))
    data: dict[str, Any] = {"preset": "minimal", "agents": [spec]}
    if case != "root":
        spec["env"] = sandbox
    if case == "no-binary":
        data["runtimes"] = {"claude": {"command": "no-such-claude"}}
    if case == "no-claude-key":
        monkeypatch.delenv("ANTHROPIC_API_KEY")
    if case == "no-codex-key":
        data["agents"] = [agent("c1", "codex", working_directory=workdir(rt_settings))]
        monkeypatch.delenv("OPENAI_API_KEY")
    if case == "bad-config-dir":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        spec["env"] = {**sandbox, "CLAUDE_CONFIG_DIR": str(blocker)}
    (rt_settings.home / "roster.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")

    result = run_fleet("start")

    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "'c1'" in lines[0] and expect in lines[0], lines[0]
    assert "c1" not in sessions(rt_settings)
    assert not (rt_settings.home / "agents").exists() or case == "bad-config-dir"


# --- Claude Code --------------------------------------------------------------------


def claude_roster(
    settings: Settings, double: ModelDouble, command: str | None = None, **extra: Any
) -> Roster:
    env = {"ANTHROPIC_BASE_URL": double.url, "IS_SANDBOX": "1", **extra.pop("env", {})}
    cc = agent("cc", "claude", working_directory=workdir(settings), env=env, **extra)
    runtimes = {"runtimes": {"claude": {"command": command}}} if command else {}
    return roster_of(cc, **runtimes)


@pytest.fixture
def started() -> Iterator[list[tuple[Settings, Roster]]]:
    fleets: list[tuple[Settings, Roster]] = []
    yield fleets
    for settings, roster in fleets:
        stop_agents(settings, roster, roster.names())


def start(fleets: list[tuple[Settings, Roster]], settings: Settings, roster: Roster) -> None:
    fleets.append((settings, roster))
    start_agents(settings, roster, roster.names())


def status_of(settings: Settings, name: str) -> tuple[str | None, str | None]:
    hb = read_heartbeat(settings.run_dir, name)
    return (hb.status, hb.card) if hb else (None, None)


def readiness(settings: Settings, roster: Roster, name: str) -> str:
    return next(p.readiness for p in probe_agents(settings, roster) if p.agent == name)


def paste_and_enter(settings: Settings, name: str, text: str) -> None:
    """Bracketed paste and Enter in ONE tmux command: the Enter reaches the TUI in the
    same write as the paste's end, the hardest case for a TUI that swallows it."""
    server = TmuxServer.for_fleet(settings, None)
    target = pane_target(name)
    server.run(
        "set-buffer", "-b", "t", "--", text, ";",
        "paste-buffer", "-p", "-d", "-b", "t", "-t", target, ";",
        "send-keys", "-t", target, "Enter",
    )  # fmt: skip


def paste_until_taken(settings: Settings, plan: LaunchPlan, text: str) -> None:
    """Paste with its Enter; the runtime's own record must show it taken, then the turn end."""
    since = utcnow()
    paste_and_enter(settings, plan.agent, text)
    wait_until(
        functools.partial(evidence.prompt_seen, plan, evidence.sha256(text), since),
        TURN_TIMEOUT,
        what=f"{text[:30]!r} taken with its Enter",
    )
    wait_until(lambda: status_of(settings, plan.agent)[0] == "ok", TURN_TIMEOUT, what="turn end")


def card_text(card: str) -> str:
    return (
        f"[from test] Card {card}: check the adapter\n\nA body line.\n\n"
        f"When done, run: fleet card done {card} --token 7"
    )


def test_claude_home_hooks_busy_ok_and_prompt_evidence(
    rt_settings: Settings, double: ModelDouble, started: list[tuple[Settings, Roster]]
) -> None:
    roster = claude_roster(rt_settings, double)
    start(started, rt_settings, roster)
    home = rt_settings.home / "agents" / "cc" / "claude"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / ".claude.json").stat().st_mode) == 0o600
    # SessionStart hook: the TUI is up, past every first-run screen.
    wait_until(lambda: status_of(rt_settings, "cc")[0] == "ok", START_TIMEOUT, what="SessionStart")
    wait_until(lambda: readiness(rt_settings, roster, "cc") == "available", 10, what="cc available")
    plan = launch_plan(rt_settings, roster, roster.agent("cc"))
    text = card_text("C-41")
    double.script(Reply(text="thinking done", think_time=3.0))
    since = utcnow()
    assert evidence.prompt_seen(plan, evidence.sha256(text), since) is False
    paste_and_enter(rt_settings, "cc", text)

    seen = double.wait_for(lambda r: r.is_main_turn and "C-41" in r.last_user_text(), TURN_TIMEOUT)
    assert text in seen.last_user_text()
    assert evidence.prompt_seen(plan, evidence.sha256(text), since) is True
    assert evidence.prompt_seen(plan, evidence.sha256(text + "x"), since) is False
    # While the model thinks the hook said busy with the card; Stop says ok.
    assert status_of(rt_settings, "cc") == ("busy", "C-41")
    assert readiness(rt_settings, roster, "cc") == "working"
    wait_until(lambda: status_of(rt_settings, "cc") == ("ok", None), TURN_TIMEOUT, what="Stop")
    # The sidecar keeps the hooks' word and the heartbeat fresh.
    time.sleep(3 * rt_settings.heartbeat_interval)
    assert status_of(rt_settings, "cc") == ("ok", None)
    assert readiness(rt_settings, roster, "cc") == "available"


def test_claude_enter_with_the_paste_is_never_swallowed(
    rt_settings: Settings, double: ModelDouble, started: list[tuple[Settings, Roster]]
) -> None:
    """submit_delay 0 for Claude Code: Enter in the same write as a paste, short and long."""
    roster = claude_roster(rt_settings, double)
    start(started, rt_settings, roster)
    wait_until(lambda: status_of(rt_settings, "cc")[0] == "ok", START_TIMEOUT, what="SessionStart")
    plan = launch_plan(rt_settings, roster, roster.agent("cc"))
    long_body = "\n".join(f"line {i} of a long card body, enough to fold" for i in range(80))
    for i in range(6):
        text = card_text(f"T-{i}") + ("\n" + long_body if i % 2 else "")
        paste_until_taken(rt_settings, plan, text)


def test_claude_permission_prompt_is_waiting_and_a_crash_is_dead(
    rt_settings: Settings, double: ModelDouble, started: list[tuple[Settings, Roster]]
) -> None:
    # Attended, and in Claude Code's "default" mode (its default is now "auto", which asks
    # a classifier instead of the person): a Bash call shows the permission dialog.
    roster = claude_roster(
        rt_settings, double, command="claude --permission-mode default", unattended=False
    )
    start(started, rt_settings, roster)
    wait_until(lambda: status_of(rt_settings, "cc")[0] == "ok", START_TIMEOUT, what="SessionStart")
    touch = ToolCall("Bash", {"command": "touch fq-perm-probe", "description": "touch a file"})
    double.script(Reply(tool_calls=[touch]))
    paste_and_enter(rt_settings, "cc", card_text("P-1"))
    wait_until(
        lambda: readiness(rt_settings, roster, "cc") == "waiting",
        TURN_TIMEOUT,
        what="permission prompt shown as waiting",
    )
    row = next(p for p in probe_agents(rt_settings, roster) if p.agent == "cc")
    assert row.current_card == "P-1"
    # Kill the CLI: the pane is dead at the next look, within one interval.
    assert row.pid is not None
    os.kill(row.pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(
        lambda: readiness(rt_settings, roster, "cc") == "dead",
        rt_settings.heartbeat_interval,
        what="dead within one interval",
    )
    assert time.monotonic() - killed <= rt_settings.heartbeat_interval


# --- Codex --------------------------------------------------------------------------


def codex_roster(settings: Settings, double: ModelDouble) -> Roster:
    env = {"OPENAI_BASE_URL": f"{double.url}/v1"}
    return roster_of(agent("cx", "codex", working_directory=workdir(settings), env=env))


def codex_composer(settings: Settings) -> None:
    """Codex gives no evidence of readiness before its first prompt (it writes the rollout
    then): the first paste waits for its composer on the screen. A known gap."""
    server = TmuxServer.for_fleet(settings, None)
    wait_until(
        lambda: "Ask Codex" in "\n".join(server.run("capture-pane", "-p", "-t", pane_target("cx"))),
        START_TIMEOUT,
        what="the Codex composer",
    )


def test_codex_home_rollout_busy_ok_and_prompt_evidence(
    rt_settings: Settings, double: ModelDouble, started: list[tuple[Settings, Roster]]
) -> None:
    roster = codex_roster(rt_settings, double)
    start(started, rt_settings, roster)
    home = rt_settings.home / "agents" / "cx" / "codex"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert f'base_url = "{double.url}/v1"' in (home / "config.toml").read_text()
    # Codex opened its session rollout: ready.
    wait_until(lambda: status_of(rt_settings, "cx")[0] == "ok", START_TIMEOUT, what="rollout")
    codex_composer(rt_settings)
    plan = launch_plan(rt_settings, roster, roster.agent("cx"))
    text = card_text("X-9")
    # Codex sends side requests too: only the turn carrying the card thinks.
    double.responder = lambda r: Reply(
        text="thought", think_time=3.0 if "X-9" in r.last_user_text() else 0.0
    )
    since = utcnow()
    paste_and_enter(rt_settings, "cx", text)
    seen = double.wait_for(lambda r: "X-9" in r.last_user_text(), TURN_TIMEOUT)
    assert text in seen.last_user_text()
    wait_until(
        lambda: evidence.prompt_seen(plan, evidence.sha256(text), since),
        5,
        what="the user message in the rollout",
    )
    wait_until(
        lambda: status_of(rt_settings, "cx") == ("ok", None), TURN_TIMEOUT, what="task_complete"
    )
    assert readiness(rt_settings, roster, "cx") in ("available", "working")


def test_codex_typed_keys_need_a_pause_before_enter_a_paste_does_not(
    rt_settings: Settings, double: ModelDouble, started: list[tuple[Settings, Roster]]
) -> None:
    """Codex folds fast typed input into a paste burst and swallows an Enter that follows
    within ~90 ms; after a bracketed paste, Enter in the same write submits."""
    roster = codex_roster(rt_settings, double)
    start(started, rt_settings, roster)
    wait_until(lambda: status_of(rt_settings, "cx")[0] == "ok", START_TIMEOUT, what="rollout")
    codex_composer(rt_settings)
    plan = launch_plan(rt_settings, roster, roster.agent("cx"))
    server = TmuxServer.for_fleet(rt_settings, None)
    target = pane_target("cx")
    typed = "[from test] a typed line that is long enough to look like a paste burst to codex"
    since = utcnow()
    server.run(
        "send-keys", "-l", "-t", target, "--", typed, ";", "send-keys", "-t", target, "Enter"
    )
    time.sleep(2.0)
    assert evidence.prompt_seen(plan, evidence.sha256(typed), since) is False
    server.run("send-keys", "-t", target, "C-u")  # drop the draft
    server.run("send-keys", "-t", target, "C-u")
    time.sleep(0.5)
    for i in range(4):
        paste_until_taken(rt_settings, plan, card_text(f"Y-{i}"))


# --- as a normal user ---------------------------------------------------------------


def test_a_normal_user_passes_the_checks_root_fails(
    rt_settings: Settings,
    double: ModelDouble,
    normal_user: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """The same unattended Claude Code agent, no IS_SANDBOX: refused as root, accepted as a
    normal user (the check runs in a child switched to that user with setuid, since this
    machine's Python lives under /root and cannot be run by another user)."""
    import pwd

    user = pwd.getpwnam(normal_user)
    # The pinned install under .cache is its owner's only (0700): the user gets a hard
    # link of the single-file binary in a directory it can read, and a home of its own.
    shared = Path(tempfile.mkdtemp(prefix="fq-user-"))
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    shared.chmod(0o755)
    (shared / "bin").mkdir(mode=0o755)
    (shared / "bin").chmod(0o755)  # the fleet CLI ran in this process: umask 077
    os.link(runtime_binary("claude").resolve(), shared / "bin" / "claude")
    home = shared / "nu"
    home.mkdir(mode=0o700)
    os.chown(home, user.pw_uid, user.pw_gid)
    monkeypatch.setenv("PATH", f"{shared / 'bin'}:/usr/bin:/bin")
    roster = roster_of(
        agent(
            "nu",
            "claude",
            working_directory=str(home),
            env={"ANTHROPIC_BASE_URL": double.url, "CLAUDE_CONFIG_DIR": str(home / "claude")},
        )
    )
    plan = launch_plan(rt_settings, roster, roster.agent("nu"))
    with pytest.raises(HostError, match="as root"):
        check_launchable(plan)
    pid = os.fork()
    if pid == 0:  # the child: become the user, run the same check, report by exit code
        code = 1
        try:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            check_launchable(launch_plan(rt_settings, roster, roster.agent("nu")))
            code = 0
        except BaseException as exc:  # the parent sees the code; the reason on stderr
            print(f"as {normal_user}: {exc}", file=sys.stderr)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (home / "claude").is_dir() and (home / "claude").stat().st_uid == user.pw_uid


@pytest.fixture(scope="session")
def normal_user() -> str:
    """A normal user that can read the project (the venv and the CLIs)."""
    name = "fqagent"
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", name], check=True, capture_output=True)
    return name
