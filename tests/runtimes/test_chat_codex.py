"""Chat with a real Codex CLI orchestrator on the model double, through a real Synapse.

What a person relies on: their Matrix message reaches the model exactly as they wrote it
(inside the labelled delivery), and the answer posted in the room is the model's own text
read from Codex's record of the turn (its rollout's ``task_complete``), once, threaded.
The reply is written so that a pane scrape could not produce it: markdown the TUI renders
without its marks, and a line longer than the pane is wide. A second message is a second
turn in the same rollout: its reply is its own, never the first turn's again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.model_double import ModelDouble, RecordedRequest, Reply
from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.e2e.test_chat_matrix import BOT_PASSWORD, bot_replies, connector
from tests.runtimes.conftest import runtime_binary
from tests.runtimes.test_chat_claude import ANSWER, ASKED, assert_answered_once
from tests.runtimes.test_real_e2e import CODEX_MODEL, KEY_REF, _env_for_panes
from tests.support.poll import wait_until
from tests.support.synapse import Synapse, synapse  # noqa: F401
from tests.support.timing import scaled
from workers import evidence
from workers.sessions import start_agents, stop_agents

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(300)]


AGAIN = "And after that?"
AGAIN_ANSWER = "After that, _nothing_: the cards are the plan."


def answer_chat(request: RecordedRequest) -> Reply:
    """The reply to each chat turn; anything else gets a short answer."""
    text = request.last_user_text()
    if ASKED in text:
        return Reply(text=ANSWER)
    if AGAIN in text:
        return Reply(text=AGAIN_ANSWER)
    return Reply(text="ok")


def orchestrator(double: ModelDouble, workdir: Path) -> dict[str, Any]:
    return {
        "name": "orch",
        "runtime": "codex",
        "class": "orchestrator",
        "working_directory": str(workdir),
        "model_hint": CODEX_MODEL,
        "env": {"OPENAI_BASE_URL": f"{double.url}/v1", "OPENAI_API_KEY": KEY_REF},
    }


def codex_ready(settings: Settings) -> bool:
    info = evidence.read_info(settings.run_dir, "orch")
    return bool(info and info.codex_home) and evidence.codex_thread_started(
        Path(str(info.codex_home)), 0.0
    )


def test_a_matrix_message_to_real_codex_is_answered_once_from_its_rollout(
    synapse: Synapse,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime_binary("codex")
    for key, value in _env_for_panes(tmp_path).items():
        monkeypatch.setenv(key, value)
    work = tmp_path / "work"
    work.mkdir()
    settings = settings.model_copy(update={"heartbeat_interval": 0.5})
    tag = os.urandom(3).hex()
    alice, bot = f"alice{tag}", f"fleet{tag}"
    synapse.register(alice, f"{alice}-pw")
    bot_id = synapse.register(bot, BOT_PASSWORD)
    op = synapse.login(alice, f"{alice}-pw")
    room = op.create_room(invite=[bot_id])
    log = tmp_path / "connector.log"

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
            wait_until(lambda: codex_ready(settings), scaled(90), what="Codex's thread started")
            with connector(settings, log):
                wait_until(lambda: bot_id in op.joined(room), scaled(60), what="the bot joined")
                asked = op.say(room, ASKED)
                wait_until(
                    lambda: bot_replies(op, room, bot_id).get(asked),
                    scaled(90),
                    what="the reply in the room",
                )
                again = op.say(room, AGAIN)
                wait_until(
                    lambda: bot_replies(op, room, bot_id).get(again),
                    scaled(90),
                    what="the second turn's reply",
                )
                time.sleep(scaled(2))  # a duplicate would come now, if at all
            record = next(r for r in store.chat_list() if r.event_id == asked)
            info = evidence.read_info(settings.run_dir, "orch")
            assert info is not None and info.codex_home
            rollout = evidence.latest_rollout(Path(info.codex_home), 0.0)
        except AssertionError:
            print("--- connector.log ---", log.read_text(errors="replace") if log.exists() else "")
            for r in store.chat_list():
                print(f"chat {r.id} {r.state} turn={r.turn_id} reason={r.reason!r}")
            raise
        finally:
            store.close()
            stop_agents(settings, roster, ["orch"])

    label = assert_answered_once(double, op, room, bot_id, record)
    second = bot_replies(op, room, bot_id)[again]
    assert [e["content"]["body"] for e in second] == [AGAIN_ANSWER]
    assert len([e for e in op.messages(room) if e["sender"] == bot_id]) == 2
    # read from Codex's record: its rollout holds the prompt and the turn's task_complete
    assert rollout is not None
    entries = evidence.rollout_entries(rollout)
    prompts = [evidence.user_text(e) for e in entries]
    assert label + ASKED in prompts
    ends = [e for e in entries if evidence.event_type(e) == "task_complete"]
    assert len(ends) == 2, ends
