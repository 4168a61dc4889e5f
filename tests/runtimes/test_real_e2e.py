"""Cards end to end into the real Claude Code and Codex TUIs, on the model double.

A fleet of a stub orchestrator and enhancer, one Claude Code coder and one Codex coder,
a real Celery host worker and beat, Redis and tmux: a card goes enqueue → tick →
``deliver_card`` → the real TUI → the double (which must see the card's exact text) →
the double's tool call runs ``fleet card done ID --token N`` in the agent's pane → done.

Leases and waits derive from the measured start-up of a real TUI on this machine now
(``startup`` below): the same work that makes a TUI slow to start makes its turns slow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from fleet_queue.card_text import render_card
from fleet_queue.cards import NewCard
from fleet_queue.fleet_view import fleet_rows
from fleet_queue.model_double import ModelDouble, RecordedRequest, Reply, ToolCall, card_closer
from fleet_queue.roster import parse_roster
from fleet_queue.settings import Settings
from tests.runtimes.conftest import KEY, RUNTIME_BIN, runtime_binary
from tests.support.fleet import Fleet, fleet_settings, running_fleet
from tests.support.poll import wait_until
from tests.support.servers import RedisServer
from tests.support.timing import scaled
from workers.heartbeat import read_heartbeat
from workers.sessions import start_agents, stop_agents
from workers.tmux import TmuxServer

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(300)]

CODEX_MODEL = "gpt-5-codex"
"""Codex 0.171's default model gets a JavaScript ``exec`` tool instead of its shell tool;
this one gets ``exec_command``, which the double's card closer calls."""
KEY_VAR = "MODEL_DOUBLE_KEY"
KEY_REF = f"${{{KEY_VAR}}}"
"""Keys never live in a roster: ``${VAR}``, expanded from the starting process's environment."""
LABEL = re.compile(r"\[from testhost:fleet #([0-9a-f]{8})\] ")
BODY = "Touch nothing: this card tests the pipeline.\nA second line with ünïcode — and «quotes»."


def _env_for_panes(tmp: Path) -> dict[str, str]:
    """The CLIs and ``fleet`` on PATH for the tmux server (and so every pane), a HOME
    of the test's own."""
    home = tmp / "userhome"
    home.mkdir(exist_ok=True)
    venv_bin = Path(sys.executable).parent
    return {
        "PATH": f"{RUNTIME_BIN}:{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        KEY_VAR: KEY,
    }


def coder(
    name: str, runtime: str, double: ModelDouble, workdir: Path, **extra: Any
) -> dict[str, Any]:
    if runtime == "claude":
        env = {"ANTHROPIC_BASE_URL": double.url, "ANTHROPIC_API_KEY": KEY_REF, "IS_SANDBOX": "1"}
    else:
        env = {"OPENAI_BASE_URL": f"{double.url}/v1", "OPENAI_API_KEY": KEY_REF}
        extra.setdefault("model_hint", CODEX_MODEL)
    return {
        "name": name,
        "runtime": runtime,
        "class": "implementer",
        "working_directory": str(workdir),
        "env": env,
        **extra,
    }


def fleet_roster(double: ModelDouble, workdir: Path, *coders: dict[str, Any]) -> dict[str, Any]:
    stubs = [
        {"name": n, "runtime": "stub", "class": c, "env": {"FLEET_STUB_WORK": "0.2"}}
        for n, c in (("lead", "orchestrator"), ("enh", "enhancer"))
    ]
    return {"version": 1, "preset": "minimal", "agents": [*stubs, *coders]}


# --- the measured start-up ------------------------------------------------------------


@pytest.fixture(scope="module")
def startup(tmp_path_factory: pytest.TempPathFactory) -> float:
    """Seconds for a real Claude Code TUI to start and report its SessionStart hook, here
    and now (~3 s on a quiet 2-core machine, 10+ s beside other suites)."""
    runtime_binary("claude")
    runtime_binary("codex")
    tmp = tmp_path_factory.mktemp("startup")
    (tmp / "work").mkdir()
    settings = Settings(home=tmp / "fleet", tmux_socket=f"fqs{os.getpid()}", host="testhost")
    with pytest.MonkeyPatch.context() as patch, ModelDouble() as double:
        for key, value in _env_for_panes(tmp).items():
            patch.setenv(key, value)
        roster = parse_roster(
            {"preset": "minimal", "agents": [coder("cc", "claude", double, tmp / "work")]}
        )
        began = time.monotonic()
        try:
            start_agents(settings, roster, ["cc"])
            wait_until(
                lambda: (hb := read_heartbeat(settings.run_dir, "cc")) and hb.status == "ok",
                timeout=120,
                what="Claude Code's SessionStart",
            )
            return time.monotonic() - began
        finally:
            stop_agents(settings, roster, ["cc"])
            TmuxServer.for_fleet(settings, roster).kill_server()


def lease_for(startup: float) -> float:
    """A lease a real turn fits in several times over: a turn (paste, hooks, one model
    request, a tool call running ``fleet``) costs about a TUI's start-up here."""
    return max(scaled(8.0), 4 * startup)


# --- the fleet ------------------------------------------------------------------------


@pytest.fixture
def panes_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in _env_for_panes(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    return work


@contextmanager
def real_fleet(
    settings: Settings, double: ModelDouble, workdir: Path, *coders: dict[str, Any]
) -> Iterator[Fleet]:
    """Every agent reported available first: for Codex, its app-server started the TUI's
    thread (``workers.evidence.codex_thread_started``); nothing waits for the screen."""
    with running_fleet(settings, fleet_roster(double, workdir, *coders)) as fleet:
        yield fleet


@pytest.fixture
def broker(redis_srv: RedisServer) -> RedisServer:
    redis.Redis.from_url(redis_srv.url).flushall()
    return redis_srv


@pytest.fixture
def fleet_settings_for(
    tmp_path: Path, broker: RedisServer, settings: Settings, startup: float
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"lease_ttl": lease_for(startup), "host_status_interval": 0.5}
        values.update(overrides)
        return fleet_settings(tmp_path / "fleet", broker.url, settings.tmux_socket, **values)

    return make


def kinds(fleet: Fleet, card_id: str) -> list[str]:
    return [str(e.kind) for e in fleet.store.events(card_id=card_id)]


def card_turns(double: ModelDouble, card_id: str) -> list[RecordedRequest]:
    mark = f"fleet card done {card_id} --token"
    return [r for r in double.main_turns() if mark in r.last_user_text()]


def assert_exact_text(fleet: Fleet, double: ModelDouble, card_id: str) -> None:
    """The double received exactly the text fleet-queue built for the card: the source
    label with its nonce, then ``render_card`` of the card and the token it was typed with."""
    card = fleet.store.get(card_id)
    built = render_card(card, card.token, card.acceptance)
    received = card_turns(double, card_id)[0].last_user_text()
    label = LABEL.match(received)
    assert label is not None, received[:80]
    assert received == label.group(0) + built


def operator(fleet: Fleet, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``fleet ARGS`` as the operator runs it: a process of its own, outside every pane."""
    env = {
        **os.environ,
        "FLEET_HOME": str(fleet.settings.home),
        "FLEET_HOST": fleet.settings.host,
        "FLEET_TMUX_SOCKET": str(fleet.settings.tmux_socket),
    }
    return subprocess.run(
        [sys.executable, "-m", "fleet_queue", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def ps_row(fleet: Fleet, agent: str) -> dict[str, Any]:
    done = operator(fleet, "ps", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["agents"]
    row: dict[str, Any] = next(r for r in rows if r["agent"] == agent)
    return row


# --- the tests ------------------------------------------------------------------------


def test_a_card_goes_through_each_real_tui_and_ends_done_once(
    fleet_settings_for: Callable[..., Settings], double: ModelDouble, panes_env: Path
) -> None:
    settings = fleet_settings_for()
    with real_fleet(
        settings,
        double,
        panes_env,
        coder("cc", "claude", double, panes_env),
        coder("cx", "codex", double, panes_env),
    ) as fleet:
        for card_id, agent in (("k-cc", "cc"), ("k-cx", "cx")):
            fleet.store.create(
                NewCard(id=card_id, title=f"for {agent}", body=BODY, target_agent=agent)
            )
        for card_id in ("k-cc", "k-cx"):
            fleet.wait_status(card_id, "done", timeout=scaled(60) + 2 * settings.lease_ttl)
        for card_id in ("k-cc", "k-cx"):
            assert_exact_text(fleet, double, card_id)
            events = kinds(fleet, card_id)
            assert events.count("delivered") == 1 and events.count("done") == 1, events
        # each closed its own card through the host worker's agent socket, from its pane
        log = (settings.home / "logs" / "worker.log").read_text()
        assert "agent socket: cc done k-cc" in log and "agent socket: cx done k-cx" in log


def short_lease(startup: float) -> float:
    """A lease a turn fits in, short enough that several of them pass in a test."""
    return max(scaled(3.0), 3 * startup)


def on_card(card_id: str, **change: Any) -> Callable[[RecordedRequest], Reply]:
    """The double's card closer, but the card's first turn (before any tool result) is
    answered with ``change`` (a think time, never): keyed on the card's own text, so the
    CLIs' side requests and other cards' turns never use it up."""
    mark = f"fleet card done {card_id} --token"

    def answer(request: RecordedRequest) -> Reply:
        reply = card_closer(request)
        text = request.last_user_text()
        if mark in text and not request.tool_results_since_user_text():
            return replace(reply, **change)
        return reply

    return answer


@pytest.mark.parametrize(("runtime", "agent"), [("claude", "cc"), ("codex", "cx")])
def test_a_think_of_several_leases_keeps_the_card_renewed_from_runtime_evidence(
    fleet_settings_for: Callable[..., Settings],
    double: ModelDouble,
    panes_env: Path,
    startup: float,
    runtime: str,
    agent: str,
) -> None:
    """Claude Code's hooks, Codex's rollout (``task_started`` at once, then the card's user
    message) say ``busy`` through the think: the host worker renews the lease."""
    lease = short_lease(startup)
    settings = fleet_settings_for(lease_ttl=lease)
    think = 3 * lease
    card_id = f"th-{agent}"
    double.responder = on_card(card_id, think_time=think)
    with real_fleet(settings, double, panes_env, coder(agent, runtime, double, panes_env)) as fleet:
        fleet.store.create(NewCard(id=card_id, title="think long", target_agent=agent))
        fleet.wait_status(card_id, "done", timeout=think + scaled(60))
        events = kinds(fleet, card_id)
        assert events.count("delivered") == 1 and events.count("done") == 1, events
        assert events.count("renewed") >= 2, events  # kept through three lease lengths
        assert "reclaimed" not in events and "released" not in events, events
        first_turns = [
            r for r in card_turns(double, card_id) if not r.tool_results_since_user_text()
        ]
        assert len(first_turns) == 1  # typed once: no second delivery reached the model
        assert_exact_text(fleet, double, card_id)


def test_a_model_that_never_answers_ends_in_reclaim_after_the_card_timeout(
    fleet_settings_for: Callable[..., Settings],
    double: ModelDouble,
    panes_env: Path,
    startup: float,
) -> None:
    lease = short_lease(startup)
    settings = fleet_settings_for(lease_ttl=lease, card_timeout=lease)
    double.responder = on_card("nv-cc", never=True)
    with real_fleet(settings, double, panes_env, coder("cc", "claude", double, panes_env)) as fleet:
        fleet.store.create(NewCard(id="nv-cc", title="no answer", target_agent="cc"))
        wait_until(
            lambda: "reclaimed" in kinds(fleet, "nv-cc"),
            timeout=settings.card_timeout + 2 * lease + scaled(60),
            what=f"nv-cc reclaimed: {kinds(fleet, 'nv-cc')}",
        )
        card = fleet.store.get("nv-cc")
        events = fleet.store.events(card_id="nv-cc")
        delivered = next(e for e in events if e.kind == "delivered")
        reclaimed = next(e for e in events if e.kind == "reclaimed")
        # renewed while Claude Code's hooks said busy, but not past the card timeout
        assert (reclaimed.at - delivered.at).total_seconds() >= settings.card_timeout
        assert card.status != "done"
        time.sleep(2 * settings.tick_interval)  # ticks pass: the busy agent gets nothing
        assert kinds(fleet, "nv-cc").count("delivered") == 1
        assert len(card_turns(double, "nv-cc")) == 1


def test_a_permission_prompt_shows_waiting_in_fleet_ps_and_nothing_is_typed_into_it(
    fleet_settings_for: Callable[..., Settings],
    double: ModelDouble,
    panes_env: Path,
    startup: float,
) -> None:
    # attended, in Claude Code's "default" permission mode: a Bash call asks the person
    lease = short_lease(startup)
    settings = fleet_settings_for(lease_ttl=lease)
    attended = coder("cc", "claude", double, panes_env, unattended=False)
    touch = ToolCall("Bash", {"command": "touch fq-perm-probe", "description": "touch a file"})
    double.responder = lambda r: (
        Reply(tool_calls=[touch]) if "pm-cc" in r.last_user_text() else card_closer(r)
    )
    roster_extra = {"runtimes": {"claude": {"command": "claude --permission-mode default"}}}
    data = {**fleet_roster(double, panes_env, attended), **roster_extra}
    with running_fleet(settings, data) as fleet:
        fleet.store.create(NewCard(id="pm-cc", title="ask first", target_agent="cc"))
        wait_until(
            lambda: ps_row(fleet, "cc")["readiness"] == "waiting",
            timeout=scaled(60),
            what="cc waiting in fleet ps --json",
        )
        assert ps_row(fleet, "cc")["current_card"] == "pm-cc"
        # the dialog has the keyboard: not even --force types into it
        sent = operator(fleet, "agent", "send", "cc", "--force", "--message", "1")
        assert sent.returncode != 0 and "waiting for a person" in sent.stderr, sent.stderr
        # a person will answer: the lease is renewed meanwhile, the card stays cc's
        wait_until(
            lambda: "renewed" in kinds(fleet, "pm-cc"),
            timeout=lease + scaled(30),
            what="pm-cc renewed while waiting",
        )
        card = fleet.store.get("pm-cc")
        assert (card.status, card.lease_owner) == ("claimed", "cc")
        assert not (panes_env / "fq-perm-probe").exists()


def test_a_crashed_cli_shows_dead_within_one_status_interval(
    fleet_settings_for: Callable[..., Settings],
    double: ModelDouble,
    panes_env: Path,
) -> None:
    settings = fleet_settings_for(host_status_interval=1.0)
    with real_fleet(
        settings,
        double,
        panes_env,
        coder("cc", "claude", double, panes_env),
        coder("cx", "codex", double, panes_env),
    ) as fleet:
        for agent in ("cc", "cx"):
            row = next(s for s in fleet.store.agent_statuses() if s.agent == agent)
            assert row.readiness == "available" and row.pid is not None
            os.kill(row.pid, signal.SIGKILL)
            killed = time.monotonic()
            wait_until(
                lambda: readiness_now(fleet, agent) == "dead",  # noqa: B023 (called at once)
                timeout=scaled(30),
                interval=0.02,
                what=f"{agent} dead in fleet ps",
            )
            took = time.monotonic() - killed
            # one interval, plus one status round's own work on this machine
            assert took <= settings.host_status_interval + scaled(1.0), took


def readiness_now(fleet: Fleet, agent: str) -> str:
    """What ``fleet ps`` shows for the agent now (its rows, read in this process)."""
    rows = fleet_rows(fleet.store, fleet.roster, fleet.settings)
    return next(r.readiness for r in rows if r.agent == agent)


def hb_status(settings: Settings, agent: str) -> str | None:
    hb = read_heartbeat(settings.run_dir, agent)
    return hb.status if hb else None


def test_send_verify_is_true_exactly_when_the_model_received_the_prompt(
    fleet_settings_for: Callable[..., Settings],
    double: ModelDouble,
    panes_env: Path,
) -> None:
    settings = fleet_settings_for()
    think = scaled(3.0)
    double.responder = lambda r: Reply(
        text="ok", think_time=think if "Hello" in r.last_user_text() else 0.0
    )
    with real_fleet(
        settings,
        double,
        panes_env,
        coder("cc", "claude", double, panes_env),
        coder("cx", "codex", double, panes_env),
    ) as fleet:
        for agent in ("cc", "cx"):
            text = f"Hello {agent}: a line from the operator,\tünïcode and a tab kept."
            sent = operator(fleet, "agent", "send", agent, "--json", "--message", text)
            assert sent.returncode == 0, sent.stderr
            receipt = json.loads(sent.stdout)
            assert receipt["verified"] is True and receipt["evidence"] == "runtime"
            # Claude Code records a pasted tab as four spaces: the adapter types it so, so
            # the prompt hook's hash proves the delivery (verify was True above)
            typed = text.replace("\t", "    ") if agent == "cc" else text
            got = double.wait_for(
                lambda r: typed in r.last_user_text(),  # noqa: B023
                timeout=scaled(30),
            )
            assert got.last_user_text() == f"[from testhost:operator #{receipt['nonce']}] {typed}"
            # while the model thinks the agent is busy: refused, nothing typed, never received
            held = f"Held {agent}: this must never reach the model."
            refused = operator(fleet, "agent", "send", agent, "--json", "--message", held)
            assert refused.returncode != 0 and "busy" in refused.stderr, refused.stderr
            wait_until(
                lambda: hb_status(settings, agent) == "ok",  # noqa: B023 (called at once)
                timeout=think + scaled(30),
                what=f"{agent}'s turn over",
            )
            assert not [r for r in double.requests if held in json.dumps(r.body)]
