"""One scenario for the runtimes whose own code runs our hooks (pi's extension, opencode's
plugin): a card typed into the real TUI through the verified Deliverer, on the model double.

The fleet is real (Redis, Celery host worker and beat, tmux); the agent's heartbeat is
sampled all along, so "busy with the card, then ok" is what the runtime itself reported.
"""

from __future__ import annotations

import json
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from fleet_queue.card_text import render_card
from fleet_queue.cards import NewCard
from fleet_queue.model_double import ModelDouble, RecordedRequest, Reply, Usage, card_closer
from fleet_queue.settings import Settings
from fleet_queue.spend.usage import Tokens
from tests.runtimes.conftest import KEY, RUNTIME_BIN, runtime_binary
from tests.runtimes.test_real_e2e import LABEL, operator
from tests.support.fleet import Fleet, fleet_settings, running_fleet
from tests.support.poll import wait_until
from tests.support.servers import RedisServer
from tests.support.timing import scaled
from workers.evidence import read_info, sha256
from workers.heartbeat import read_heartbeat, utcnow
from workers.runtimes import adapter_for, launch_plan
from workers.turn_replies import TurnReply, turn_reply

KEY_VAR = "MODEL_DOUBLE_KEY"
MODELS = {"pi": "anthropic/claude-sonnet-4-5", "opencode": "anthropic/claude-sonnet-4-5"}
SPEND_READ = ("pi", "opencode")
"""Runtimes whose records the spend scan reads (pi's session files, opencode's database)."""
FIRST_TURN = Usage(
    input_tokens=1200, output_tokens=345, cache_read_tokens=100, cache_write_tokens=50
)
"""The card's first answer: every kind of token, so the reader's mapping of each shows."""
BODY = "Touch nothing: this card tests the pipeline.\nA second line with ünïcode — and «quotes»."


@pytest.fixture
def panes_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLIs and ``fleet`` on PATH for the tmux server and every pane; a HOME of the
    test's own (so nothing of the machine's own pi or opencode config is read)."""
    home = tmp_path / "userhome"
    home.mkdir()
    venv_bin = Path(sys.executable).parent
    monkeypatch.setenv("PATH", f"{RUNTIME_BIN}:{venv_bin}:/usr/local/bin:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(KEY_VAR, KEY)
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
def broker(redis_srv: RedisServer) -> RedisServer:
    redis.Redis.from_url(redis_srv.url).flushall()
    return redis_srv


@pytest.fixture
def fleet_for(tmp_path: Path, broker: RedisServer, settings: Settings) -> Settings:
    return fleet_settings(tmp_path / "fleet", broker.url, settings.tmux_socket)


def roster(
    runtime: str, agent: str, double: ModelDouble, workdir: Path, unattended: bool = True
) -> dict[str, Any]:
    """Two stubs and the one agent; its provider is the double, its key a ``${VAR}``."""
    env = {"ANTHROPIC_BASE_URL": double.url, "ANTHROPIC_API_KEY": f"${{{KEY_VAR}}}"}
    if runtime == "opencode":
        env["OPENCODE_DISABLE_MODELS_FETCH"] = "1"  # offline: its bundled model list
    stubs = [
        {"name": n, "runtime": "stub", "class": c, "env": {"FLEET_STUB_WORK": "0.2"}}
        for n, c in (("lead", "orchestrator"), ("enh", "enhancer"))
    ]
    coder = {
        "name": agent,
        "runtime": runtime,
        "class": "implementer",
        "working_directory": str(workdir),
        "model_hint": MODELS[runtime],
        "env": env,
        "unattended": unattended,
    }
    return {"version": 1, "preset": "minimal", "agents": [*stubs, coder]}


def slow_first_turn(card_id: str, think: float) -> Callable[[RecordedRequest], Reply]:
    """The card closer, the card's first turn answered after ``think`` seconds."""
    mark = f"fleet card done {card_id} --token"

    def answer(request: RecordedRequest) -> Reply:
        reply = card_closer(request)
        text = request.last_user_text()
        if mark in text and not request.tool_results_since_user_text():
            return replace(reply, think_time=think, usage=FIRST_TURN)
        return reply

    return answer


class HeartbeatSampler:
    """Every distinct (status, card) the agent's heartbeat said, in order, while running."""

    def __init__(self, settings: Settings, agent: str) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(settings, agent), daemon=True)

    def _run(self, settings: Settings, agent: str) -> None:
        while not self._stop.is_set():
            hb = read_heartbeat(settings.run_dir, agent)
            if hb is not None and (not self.seen or self.seen[-1] != (hb.status, hb.card)):
                self.seen.append((hb.status, hb.card))
            self._stop.wait(0.05)

    def busy_then_ok(self, card: str) -> bool:
        """The runtime said busy with ``card``, and ok (no card) after it."""
        seen = list(self.seen)
        return ("busy", card) in seen and ("ok", None) in seen[seen.index(("busy", card)) :]

    def __enter__(self) -> HeartbeatSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def kinds(fleet: Fleet, card_id: str) -> list[str]:
    return [str(e.kind) for e in fleet.store.events(card_id=card_id)]


def card_scenario(
    runtime: str, agent: str, settings: Settings, double: ModelDouble, workdir: Path
) -> None:
    """Start, a card, its exact text at the double, closed by the agent's own shell tool,
    busy then ok; then an operator's message verified by the runtime's own record."""
    runtime_binary(runtime)
    card_id = f"k-{agent}"
    think = scaled(2.0)
    double.responder = slow_first_turn(card_id, think)
    began = time.monotonic()
    with running_fleet(settings, roster(runtime, agent, double, workdir)) as fleet:
        started = time.monotonic() - began
        _assert_private_home(settings, runtime, agent)
        with HeartbeatSampler(settings, agent) as sampler:
            fleet.store.create(
                NewCard(id=card_id, title="for " + agent, body=BODY, target_agent=agent)
            )
            fleet.wait_status(card_id, "done", timeout=scaled(60) + think)
            wait_until(
                lambda: sampler.busy_then_ok(card_id),
                timeout=scaled(30),
                what=f"{agent} busy with {card_id}, then ok: {sampler.seen}",
            )
        events = kinds(fleet, card_id)
        assert events.count("delivered") == 1 and events.count("done") == 1, events
        _assert_exact_text(fleet, double, card_id)
        log = (settings.home / "logs" / "worker.log").read_text()
        assert f"agent socket: {agent} done {card_id}" in log  # its bash tool ran `fleet`
        _assert_operator_message_verified(fleet, double, runtime, agent)
        if runtime in SPEND_READ:
            _assert_spend_of_the_card(fleet, double, runtime, agent, card_id)
    print(f"{runtime}: fleet up and {agent} available in {started:.1f}s")


def _assert_spend_of_the_card(
    fleet: Fleet, double: ModelDouble, runtime: str, agent: str, card: str
) -> None:
    """The host worker's status rounds read the runtime's own record into the ledger: the
    card's row holds exactly the usage the double answered its requests with."""
    mark = f"fleet card done {card} --token"
    answered = [r for r in double.main_turns() if mark in r.last_user_text()]
    first, rest = FIRST_TURN, Usage()
    expected = Tokens(
        first.input_tokens, first.output_tokens, first.cache_read_tokens, first.cache_write_tokens
    )
    for _ in answered[1:]:
        expected = expected + Tokens(rest.input_tokens, rest.output_tokens)

    def card_row() -> Tokens | None:
        rows = fleet.store.spend_rows("2000-01-01", cards=[card])
        return next((r.tokens for r in rows if r.agent == agent), None)

    wait_until(lambda: card_row() == expected, timeout=scaled(30), what=f"{card} spend")
    row = next(r for r in fleet.store.spend_rows("2000-01-01", cards=[card]))
    assert row.model == MODELS[runtime].split("/")[1]


def _assert_private_home(settings: Settings, runtime: str, agent: str) -> None:
    home = settings.home / "agents" / agent / runtime
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    info = read_info(settings.run_dir, agent)
    assert info is not None and info.runtime == runtime


def _assert_exact_text(fleet: Fleet, double: ModelDouble, card_id: str) -> None:
    card = fleet.store.get(card_id)
    built = render_card(card, card.token, card.acceptance)
    mark = f"fleet card done {card_id} --token"
    first = [r for r in double.main_turns() if mark in r.last_user_text()]
    received = first[0].last_user_text()
    label = LABEL.match(received)
    assert label is not None, received[:80]
    assert received == label.group(0) + built
    typed_once = [r for r in first if not r.tool_results_since_user_text()]
    assert len(typed_once) == 1


def _assert_operator_message_verified(
    fleet: Fleet, double: ModelDouble, runtime: str, agent: str
) -> None:
    text = f"Hello {agent}: a line from the operator,\tünïcode and a tab kept."
    since = utcnow()
    deadline = time.monotonic() + scaled(30)
    while True:  # right after a turn the pane is still settling: refused, nothing typed
        sent = operator(fleet, "agent", "send", agent, "--json", "--message", text)
        if sent.returncode == 0 or time.monotonic() > deadline:
            break
        assert "pane output changed" in sent.stderr, sent.stderr
        time.sleep(0.5)
    assert sent.returncode == 0, sent.stderr
    receipt = json.loads(sent.stdout)
    assert receipt["verified"] is True and receipt["evidence"] == "runtime", receipt
    adapter = adapter_for(runtime)
    assert adapter is not None
    typed = text.replace("\t", adapter.tab_as) if adapter.tab_as else text  # as it records it
    got = double.wait_for(lambda r: typed in r.last_user_text(), timeout=scaled(30))
    prompt = f"[from testhost:operator #{receipt['nonce']}] {typed}"
    assert got.last_user_text() == prompt
    # the chat connector's reply: the turn's end as the runtime recorded it, found by the hash
    plan = launch_plan(fleet.settings, fleet.roster, fleet.roster.agent(agent))
    wait_until(
        lambda: turn_reply(plan, sha256(prompt), since) is not None,
        timeout=scaled(30),
        what=f"{agent}'s reply recorded",
    )
    assert turn_reply(plan, sha256(prompt), since) == TurnReply("Hello from the model double.")
