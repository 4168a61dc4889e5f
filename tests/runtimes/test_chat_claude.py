"""Chat with a real Claude Code orchestrator on the model double, through a real Synapse.

What a person relies on: their Matrix message reaches the model exactly as they wrote it
(inside the labelled delivery), and the answer posted in the room is the model's own text
read from Claude Code's record of the turn (its Stop hook and transcript), once, threaded.
The reply is written so that a pane scrape could not produce it: markdown the TUI renders
without its marks, and a line longer than the pane is wide.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.connector.base import ChatRecord, ChatState
from fleet_queue.model_double import ModelDouble, RecordedRequest, Reply
from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.e2e.test_chat_matrix import BOT_PASSWORD, bot_replies, connector
from tests.runtimes.conftest import runtime_binary
from tests.runtimes.test_real_e2e import KEY_REF, _env_for_panes
from tests.support.poll import wait_until
from tests.support.synapse import MatrixUser, Synapse, synapse  # noqa: F401
from tests.support.timing import scaled
from workers import evidence
from workers.heartbeat import read_heartbeat
from workers.sessions import start_agents, stop_agents

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(300)]

ASKED = "What is the plan?\nÜnïcode «kept», and $HOME not expanded."
ANSWER = (
    "**The plan**, in two steps:\n\n"
    "1. `fleet card add` the work — each card small enough for one turn of one agent, "
    "with its acceptance written down before anyone starts on it, so nothing is argued later.\n"
    "2. Ship it."
)


def answer_chat(request: RecordedRequest) -> Reply:
    """A plain text reply to the chat turn; anything else gets a short answer."""
    if ASKED in request.last_user_text():
        return Reply(text=ANSWER)
    return Reply(text="ok")


def orchestrator(double: ModelDouble, workdir: Path) -> dict[str, Any]:
    env = {"ANTHROPIC_BASE_URL": double.url, "ANTHROPIC_API_KEY": KEY_REF}
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # Claude Code's own opt-in for its unattended flag as root
    return {
        "name": "orch",
        "runtime": "claude",
        "class": "orchestrator",
        "working_directory": str(workdir),
        "env": env,
    }


def assert_answered_once(
    double: ModelDouble, op: MatrixUser, room: str, bot_id: str, record: ChatRecord
) -> str:
    """The double got ``ASKED`` byte for byte inside the labelled delivery, and the room got
    the model's own ``ANSWER`` (no rendering, no wrapping) once, threaded; the label."""
    label = f"[from matrix {op.user_id} #{record.turn_id}] "
    received = [r.last_user_text() for r in double.main_turns() if ASKED in r.last_user_text()]
    assert received == [label + ASKED]
    assert record.prompt_sha == evidence.sha256(label + ASKED)
    got = bot_replies(op, room, bot_id)[record.event_id]
    assert len(got) == 1, got
    content = got[0]["content"]
    assert content["body"] == ANSWER
    assert content["m.relates_to"]["rel_type"] == "m.thread"
    assert content["m.relates_to"]["event_id"] == record.event_id
    assert record.state == ChatState.ANSWERED and record.reply == ANSWER
    return label


def test_a_matrix_message_to_real_claude_code_is_answered_once_from_its_own_record(
    synapse: Synapse,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime_binary("claude")
    for key, value in _env_for_panes(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    settings = settings.model_copy(update={"heartbeat_interval": 0.5})
    tag = os.urandom(3).hex()
    alice, bot = f"alice{tag}", f"fleet{tag}"
    synapse.register(alice, f"{alice}-pw")
    bot_id = synapse.register(bot, BOT_PASSWORD)
    op = synapse.login(alice, f"{alice}-pw")
    room = op.create_room(invite=[bot_id])

    with ModelDouble() as double:
        double.responder = answer_chat
        roster = parse_roster(
            {
                "preset": "minimal",
                "agents": [orchestrator(double, work)],
                "connector": synapse.connector_block(bot_id, room, [op.user_id]),
            }
        )
        write_roster(roster, settings.effective_roster_path)
        start_agents(settings, roster, ["orch"])
        store = CardStore.from_settings(settings)
        try:
            wait_until(
                lambda: (hb := read_heartbeat(settings.run_dir, "orch")) and hb.status == "ok",
                timeout=scaled(60),
                what="Claude Code's SessionStart",
            )
            with connector(settings, tmp_path / "connector.log"):
                wait_until(lambda: bot_id in op.joined(room), scaled(60), what="the bot joined")
                asked = op.say(room, ASKED)
                wait_until(
                    lambda: bot_replies(op, room, bot_id).get(asked),
                    scaled(90),
                    what="the reply in the room",
                )
                time.sleep(scaled(2))  # a duplicate would come now, if at all
            record = next(r for r in store.chat_list() if r.event_id == asked)
            turns = evidence.turns_path(settings.run_dir, "orch").read_text().splitlines()
        finally:
            store.close()
            stop_agents(settings, roster, ["orch"])

    assert_answered_once(double, op, room, bot_id, record)
    assert len([e for e in op.messages(room) if e["sender"] == bot_id]) == 1
    # read from Claude Code's record: its Stop hook named the transcript that holds the turn
    ends = [json.loads(line) for line in turns]
    assert [e["event"] for e in ends] == ["Stop"], ends
    transcript = Path(ends[0]["transcript_path"])
    assert transcript.is_file() and re.search(r"\.jsonl$", transcript.name)
