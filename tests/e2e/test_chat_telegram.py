"""The chat connector on Telegram: ``fleet connector run`` against the loopback Bot API
server (tests/support/telegram_api.py; no machine here reaches api.telegram.org), the
stub orchestrator in real tmux.

What a person relies on: a message from an allowed user reaches the orchestrator once
and its reply (read from the stub's own record of the turn) arrives once, as a reply to
that message; a message sent into a busy turn waits in the store; a stranger's message
never reaches the pane; a connector killed mid-turn and started again loses nothing and
sends no reply twice; the bot's token never appears in the connector's log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.chat_e2e import ChatSide, round_trip, start_stub_orchestrator
from tests.support.telegram_api import TOKEN, BotApi, telegram_api  # noqa: F401

pytestmark = [pytest.mark.tmux]

GROUP, ALICE, MALLORY = -1001234567890, 4242, 6666


def test_telegram_round_trip_busy_queue_strangers_and_restart(
    telegram_api: BotApi,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    api = telegram_api
    api.chat(GROUP)
    settings = settings.model_copy(update={"heartbeat_interval": 0.5})
    block = {"kind": "telegram", "api_url": api.url, "rooms": {str(GROUP): {"allow": [str(ALICE)]}}}
    start_stub_orchestrator(settings, block)
    log = tmp_path / "connector.log"
    store = CardStore.from_settings(settings)

    def answers(asked: str) -> list[str]:
        return [
            m["text"] for m in api.sent(GROUP)
            if m.get("reply_to_message", {}).get("message_id") == int(asked)
        ]  # fmt: skip

    side = ChatSide(
        ask=lambda allowed, text: str(api.say(GROUP, ALICE if allowed else MALLORY, text)),
        answers=answers,
        event_id=lambda asked: f"{GROUP}:{asked}",
        connected=lambda: api.polls >= 1,
    )
    # The fourth message is said while the connector is down: Telegram keeps it until an
    # offset confirms it, the restarted connector polls from the offset it kept.
    asked = round_trip(settings, store, log, {"FLEET_TELEGRAM_TOKEN": TOKEN}, side)
    store.close()

    assert len(asked) == 5 and len(api.sent(GROUP)) == 4  # no reply to the stranger, none twice
    text = log.read_text()
    assert f"refused a telegram message from {MALLORY} in {GROUP}" in text
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
    cursor = settings.run_dir / "chat" / "telegram.json"
    assert oct(cursor.stat().st_mode & 0o777) == "0o600"
