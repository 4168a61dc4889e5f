"""The Matrix adapter's replies wait for its login (matrix-nio, no homeserver needed).

A restarted connector's pump runs beside the adapter's login and finds at once the
delivered messages whose reply was recorded while it was down; a reply sent before the
login ended raised nio's "Not logged in" and ended the connector (the e2e restart in
tests/e2e/test_chat_matrix.py against a real Synapse).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import pytest

from fleet_queue.connector.base import ChatRecord, ChatState
from fleet_queue.connector.config import ChatConfig, RoomConfig
from fleet_queue.connector.matrix import ChatSendError, MatrixAdapter

ROOM = "!room:localhost"


def adapter(tmp_path: Path) -> MatrixAdapter:
    config = ChatConfig(
        kind="matrix",
        homeserver="http://127.0.0.1:9",  # never contacted: nothing is logged in
        user_id="@fleet:localhost",
        rooms={ROOM: RoomConfig(allow=("@alice:localhost",))},
    )
    return MatrixAdapter(config, tmp_path, password="secret")


def record() -> ChatRecord:
    return ChatRecord(
        id=1, network="matrix", room=ROOM, sender="@alice:localhost", event_id="$1",
        text="hello", agent="orch", state=ChatState.DELIVERED, thread_root=None,
        turn_id="n1", prompt_sha="a" * 64, reply="hi", reason=None, created_at=0.0,
        delivered_at=0.0, answered_at=None,
    )  # fmt: skip


def test_a_reply_before_the_login_waits_for_it_and_fails_softly_once_closed(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        bot = adapter(tmp_path)
        sending = asyncio.create_task(bot.reply(record(), "hi"))
        await asyncio.sleep(0.2)
        assert not sending.done()  # waits for the login instead of "Not logged in"
        await bot.close()
        with pytest.raises(ChatSendError, match="closed before it logged in"):
            await sending  # a FleetError: the service keeps the message delivered

    # A thread of its own: a browser test earlier in the session (Playwright's sync API)
    # can leave an event loop running in this one, where asyncio.run() refuses to start.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
