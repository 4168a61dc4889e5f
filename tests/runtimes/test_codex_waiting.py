"""Codex asking a person shows ``waiting``, from Codex's own records, never from its screen.

The real Codex 0.171 TUI, launched attended with ``-a on-request``, on the model double: the
model asks to run a command outside the sandbox (``sandbox_permissions:
"require_escalated"``), so Codex shows its approval prompt. Its ``PermissionRequest`` hook
(written and trusted by ``fleet start``) says ``waiting``; the answer, given through the
console's take-control path (``TmuxTerminal``), makes the turn ``busy`` again, and its end
``ok``. What is asserted is ``probe_agents``: what the host worker's status round reports;
then the same through a whole fleet (``fleet ps``, the lease renewed while it waits, the
card done once approved); and, on a store alone, that the tick gives a waiting agent no card.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fleet_queue.cards import AgentStatus, CardStatus, Claim, NewCard
from fleet_queue.errors import AgentBusyError
from fleet_queue.model_double import ModelDouble, RecordedRequest, Reply, ToolCall, card_closer
from fleet_queue.model_double.script import CARD_DONE
from fleet_queue.roster import Roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from fleet_queue.supervisor import run_tick
from tests.host.test_codex_evidence import write_logs
from tests.runtimes.test_adapters import (  # the fixtures and helpers of the adapter tests
    START_TIMEOUT,
    TURN_TIMEOUT,
    agent,
    card_text,
    double,
    paste_and_enter,
    roster_of,
    rt_settings,
    start,
    started,
    status_of,
    workdir,
)
from tests.runtimes.test_real_e2e import (  # the fleet fixtures and helpers of the e2e tests
    broker,
    coder,
    fleet_roster,
    fleet_settings_for,
    kinds,
    panes_env,
    ps_row,
    short_lease,
    startup,
)
from tests.support.fleet import running_fleet
from tests.support.poll import wait_until
from tests.support.timing import scaled
from workers import evidence, hooks
from workers.delivery import Deliverer
from workers.heartbeat import read_heartbeat
from workers.pane_stream import TmuxTerminal
from workers.probe import probe_agents

__all__ = [  # fixtures used by name
    "broker",
    "double",
    "fleet_settings_for",
    "panes_env",
    "rt_settings",
    "started",
    "startup",
]

Test = TypeVar("Test", bound=Callable[..., Any])
REAL = (pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(300))
"""The marks of a test that runs the real Codex (slow tier); the store test is fast."""


def real(test: Test) -> Test:
    for mark in REAL:
        test = mark(test)
    return test


CODEX_MODEL = "gpt-5-codex"
"""Offered ``exec_command`` (with its ``sandbox_permissions``); the default model gets only
the JavaScript ``exec`` tool."""


ANSWERED = (
    "<- response: CommandExecutionRequestApproval { request_id: Integer(0), response:"
    " CommandExecutionRequestApprovalResponse { decision: Accept } }"
    " app-server event: serverRequest/resolved targeted_connections=1"
)
"""Codex 0.171's log of a person's answer (two lines in its log, one here)."""

ATTENDED = {"codex": {"command": "codex -a on-request"}}
"""Codex 0.171's ``-a`` takes ``on-request`` and ``never`` only."""


def asks_to_run(request: RecordedRequest, command: str) -> Reply:
    """The model asks Codex to run ``command`` outside its sandbox: with ``on-request`` that
    is the person's to approve."""
    assert "exec_command" in request.tools, request.tools
    arguments = {
        "cmd": command,
        "sandbox_permissions": "require_escalated",
        "justification": "the test needs a person to approve this",
    }
    return Reply(tool_calls=[ToolCall("exec_command", arguments)])


def attended_codex(settings: Settings, double: ModelDouble) -> Roster:
    """Its ``CODEX_HOME`` named through a symlink: Codex resolves it, and keys its hooks'
    trust by the resolved path (a wrong key stops Codex at "Hooks need review")."""
    real, link = settings.home.parent / "codex-real", settings.home.parent / "codex-home"
    real.mkdir(mode=0o700)
    link.symlink_to(real)
    cx = agent(
        "cx",
        "codex",
        working_directory=workdir(settings),
        env={"OPENAI_BASE_URL": f"{double.url}/v1", "CODEX_HOME": str(link)},
        unattended=False,
        model_hint=CODEX_MODEL,
    )
    return roster_of(cx, runtimes=ATTENDED)


def readiness(settings: Settings, roster: Roster) -> tuple[str, str | None]:
    row = next(p for p in probe_agents(settings, roster) if p.agent == "cx")
    return row.readiness, row.current_card


@contextmanager
def watched(settings: Settings, roster: Roster) -> Iterator[list[str]]:
    """Every change of the agent's readiness (``probe_agents`` in a loop) while inside."""
    seen: list[str] = []
    stop = threading.Event()

    def look() -> None:
        now = readiness(settings, roster)[0]
        if not seen or seen[-1] != now:
            seen.append(now)

    def watch() -> None:
        while not stop.is_set():
            look()
            stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        look()  # the state the test waited for, even if it came after the last look


def wait_ready(settings: Settings, roster: Roster, want: str, timeout: float) -> float:
    """Seconds until the status round reports ``want``."""
    began = time.monotonic()
    wait_until(
        lambda: readiness(settings, roster)[0] == want,
        timeout,
        interval=0.05,
        what=f"cx {want} (now {readiness(settings, roster)})",
    )
    return time.monotonic() - began


def one_of(seen: list[str], *shapes: list[str]) -> bool:
    return any(seen == shape for shape in shapes)


@real
def test_codex_approval_prompt_is_waiting_until_answered_then_busy_then_ok(
    rt_settings: Settings, double: ModelDouble, started: list[tuple[Settings, Roster]]
) -> None:
    roster = attended_codex(rt_settings, double)
    work = Path(workdir(rt_settings))
    think = scaled(2.0)  # the model's answer to the command's output: the turn stays busy

    def answer(request: RecordedRequest) -> Reply:
        text = request.last_user_text()
        if "W-1" in text and not request.tool_results_since_user_text():
            return asks_to_run(request, "touch fq-approved")
        if "W-2" in text and not request.tool_results_since_user_text():
            return asks_to_run(request, "touch fq-declined")
        if "W-1" in text:
            return Reply(text="done", think_time=think)
        return Reply(text="Model double session")  # the thread's title

    double.responder = answer
    start(started, rt_settings, roster)
    wait_until(lambda: status_of(rt_settings, "cx")[0] == "ok", START_TIMEOUT, what="Codex up")
    terminal = TmuxTerminal(rt_settings, roster)
    deliverer = Deliverer(rt_settings, roster)
    try:
        with watched(rt_settings, roster) as seen:
            paste_and_enter(rt_settings, "cx", card_text("W-1"))
            wait_ready(rt_settings, roster, "waiting", TURN_TIMEOUT)
            assert readiness(rt_settings, roster) == ("waiting", "W-1")
            assert status_of(rt_settings, "cx") == ("waiting", "W-1")
            # the prompt has the keyboard: not even a forced send types into it
            with pytest.raises(AgentBusyError, match="waiting for a person"):
                deliverer.deliver("cx", "1", source="test", force=True)
            # it stays so through several sidecar beats and the title's side turn
            held_until = time.monotonic() + 4 * rt_settings.heartbeat_interval
            while time.monotonic() < held_until:
                assert readiness(rt_settings, roster)[0] == "waiting"
                time.sleep(0.05)
            assert not (work / "fq-approved").exists()
            terminal.type_raw("cx", "y")  # the console's take-control: approve once
            took = wait_ready(rt_settings, roster, "working", TURN_TIMEOUT)
            assert took < think, took  # busy again while the model still thinks
            assert (work / "fq-approved").exists()
            wait_ready(rt_settings, roster, "available", TURN_TIMEOUT + think)
        full = ["available", "working", "waiting", "working", "available"]
        assert one_of(seen, full, full[:1] + full[2:]), seen

        with watched(rt_settings, roster) as seen:
            paste_and_enter(rt_settings, "cx", card_text("W-2"))
            wait_ready(rt_settings, roster, "waiting", TURN_TIMEOUT)
            terminal.press("cx", "Escape")  # declined: Codex ends the turn
            wait_ready(rt_settings, roster, "available", TURN_TIMEOUT)
        assert not (work / "fq-declined").exists()
        full = ["available", "working", "waiting", "available"]
        assert one_of(seen, full, full[:1] + full[2:]), seen
    finally:
        deliverer.close()
        terminal.close()


def status_row(readiness: str) -> AgentStatus:
    """The store's row for ``cx`` as the host worker's status round writes it."""
    now = datetime.now(UTC)
    heartbeat = {"waiting": "waiting", "working": "busy"}.get(readiness, "ok")
    return AgentStatus(
        tenant_id="t1", host="h1", agent="cx", runtime="codex", agent_class="coder",
        heartbeat_at=now, health=True, heartbeat_status=heartbeat, pane_alive=True,
        readiness=readiness, updated_at=now,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_waiting_agent_with_no_card_is_not_given_one_until_the_person_answers(
    tmp_path: Path,
) -> None:
    """Codex asks a person in a turn no card started (an operator's ``fleet agent send``, a
    chat message): no lease says it is busy, its readiness does. A card claimed for it
    would find the prompt holding the keyboard and wait out its lease, an attempt lost."""
    roster = roster_of(agent("cx", "codex", host="h1"))
    settings = Settings(home=tmp_path, host="h1", tenant="t1", lease_ttl=120.0)
    with CardStore(f"sqlite:///{tmp_path / 'store.db'}", tenant="t1", host="h1") as store:
        store.create(NewCard(id="for-cx", title="a card for cx", target_agent="cx"))
        got: list[Claim] = []
        store.upsert_agent_statuses([status_row("waiting")])
        run_tick(store, roster, settings, got.append)
        assert got == [] and store.get("for-cx").status == CardStatus.READY
        store.upsert_agent_statuses([status_row("available")])  # answered, the turn ended
        run_tick(store, roster, settings, got.append)
        assert [(c.agent, c.card.id) for c in got] == [("cx", "for-cx")]


@real
def test_through_the_fleet_a_codex_card_waits_for_its_approval_then_ends_done(
    fleet_settings_for: Callable[..., Settings],
    double: ModelDouble,
    panes_env: Path,
    startup: float,
) -> None:
    """The card's own closing command needs approval: ``fleet ps`` says ``waiting`` with the
    card, the host worker renews its lease while the person takes their time, and once
    approved the command closes the card: delivered once, done once, never reclaimed."""
    lease = short_lease(startup)
    settings = fleet_settings_for(lease_ttl=lease)

    def answer(request: RecordedRequest) -> Reply:
        closing = CARD_DONE.search(request.last_user_text())
        if closing and not request.tool_results_since_user_text():
            return asks_to_run(request, closing.group(0))
        return card_closer(request)

    double.responder = answer
    cx = coder("cx", "codex", double, panes_env, unattended=False)
    data = {**fleet_roster(double, panes_env, cx), "runtimes": ATTENDED}
    with running_fleet(settings, data) as fleet:
        fleet.store.create(NewCard(id="ap-cx", title="approve my close", target_agent="cx"))
        wait_until(
            lambda: ps_row(fleet, "cx")["readiness"] == "waiting",
            timeout=scaled(60) + settings.lease_ttl,
            what="cx waiting in fleet ps --json",
        )
        assert ps_row(fleet, "cx")["current_card"] == "ap-cx"
        wait_until(
            lambda: "renewed" in kinds(fleet, "ap-cx"),
            timeout=lease + scaled(30),
            what="ap-cx renewed while Codex waits",
        )
        card = fleet.store.get("ap-cx")
        assert (card.status, card.lease_owner) == (CardStatus.CLAIMED, "cx")
        terminal = TmuxTerminal(fleet.settings, fleet.roster)
        try:
            terminal.type_raw("cx", "y")
        finally:
            terminal.close()
        fleet.wait_status("ap-cx", "done", timeout=scaled(60))
        events = kinds(fleet, "ap-cx")
        assert events.count("delivered") == 1 and events.count("done") == 1, events
        assert "reclaimed" not in events, events


def rollout_line(at: datetime, kind: str, payload: dict[str, Any]) -> str:
    return json.dumps({"timestamp": at.isoformat(), "type": kind, "payload": payload}) + "\n"


def log_answer(home: Path, at: float) -> None:
    """The person's answer in Codex's log, dated ``at`` to the nanosecond as Codex dates it."""
    write_logs(home, [])  # the table, as Codex makes it
    with contextlib.closing(sqlite3.connect(home / "logs_2.sqlite")) as con, con:
        con.execute(
            "INSERT INTO logs (ts, ts_nanos, level, target, feedback_log_body)"
            " VALUES (?, ?, 'INFO', 'codex_app_server::outgoing_message', ?)",
            (int(at), int(at % 1 * 1e9), ANSWERED),
        )


def test_waiting_from_the_hook_until_codex_logs_the_answer_or_writes_on(tmp_path: Path) -> None:
    """The rule on Codex's records as 0.171 writes them (fast: no CLI): the hook's
    ``waiting`` holds while the turn is open and nothing came after it; an answer in the log
    or a new rollout line is ``busy``; the turn's end is ``ok``; ``notify`` (a side turn's
    end) changes nothing."""
    home, run = tmp_path / "codex", tmp_path / "run"
    before = datetime.now(UTC) - timedelta(seconds=5)
    rollout = home / "sessions" / "2026" / "12" / "02" / "rollout-test.jsonl"
    rollout.parent.mkdir(parents=True)
    text = {"type": "input_text", "text": card_text("C-7")}
    user = {"type": "message", "role": "user", "content": [text]}
    rollout.write_text(
        rollout_line(before, "event_msg", {"type": "task_started"})
        + rollout_line(before, "response_item", user)
        + rollout_line(before, "response_item", {"type": "function_call", "name": "exec"})
    )
    evidence.write_info(run, "cx", evidence.RuntimeInfo("codex", time.time() - 60, str(home)))
    where = ["--agent", "cx", "--run-dir", str(run)]

    def hook(event: str, *payload: str) -> tuple[str | None, str | None]:
        """The hook program as Codex runs it, then what the heartbeat says."""
        assert hooks.main(["codex", event, *where, *payload]) == 0
        hb = read_heartbeat(run, "cx")
        return (hb.status, hb.card) if hb else (None, None)

    def beat() -> tuple[str, str | None]:
        hb = evidence.sidecar_beat(run, "cx", os.getpid())
        return hb.status, hb.card

    assert hook("PermissionRequest") == ("waiting", "C-7")
    assert beat() == ("waiting", "C-7")
    log_answer(home, time.time() - 2)  # an earlier prompt's answer
    assert beat() == ("waiting", "C-7")
    assert hook("notify", '{"type": "agent-turn-complete"}') == ("waiting", "C-7")
    log_answer(home, time.time())
    assert beat() == ("busy", "C-7")
    time.sleep(0.01)
    assert hook("PermissionRequest") == ("waiting", "C-7")  # asked again, later
    after = datetime.now(UTC) + timedelta(seconds=1)
    with rollout.open("a") as out:  # the refusal (or the output) written on
        out.write(rollout_line(after, "response_item", {"type": "function_call_output"}))
    assert beat() == ("busy", "C-7")
    assert hook("PermissionRequest") == ("busy", "C-7")  # not after the rollout's last line
    assert hook("PostToolUse") == ("busy", "C-7")
    with rollout.open("a") as out:
        out.write(rollout_line(after, "event_msg", {"type": "task_complete"}))
    assert hook("notify", '{"type": "agent-turn-complete"}') == ("ok", None)
