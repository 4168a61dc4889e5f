"""Fleet notices and room aliases against a real Synapse on loopback.

What a person relies on: a room named in the roster by its alias is the room the alias
names (the bot joins it, an allowed person's message there is answered there); a room
with ``notices: true`` hears of a failed card and of the fleet's pause once each, a
burst of failures as one counted message, nothing of what happened before the connector
first started, and nothing twice across a connector killed and started again. An alias
that does not resolve stops the connector's start with one line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.cards import EventKind, NewCard
from fleet_queue.connector.notices import NOTICE_GAP, NoticeCursors, cursor_path
from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.e2e.test_chat_matrix import BOT_PASSWORD, bot_replies
from tests.support import chat_e2e
from tests.support.chat_e2e import alive, explained, start_stub_orchestrator
from tests.support.poll import wait_until
from tests.support.synapse import MatrixUser, Synapse, synapse  # noqa: F401
from tests.support.timing import scaled

pytestmark = [pytest.mark.tmux]

BURST = 20
SECRET = {"FLEET_MATRIX_PASSWORD": BOT_PASSWORD}


@contextmanager
def connector(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with chat_e2e.connector(settings, log, SECRET) as proc:
        yield proc


def notices(user: MatrixUser, room: str, bot: str) -> list[str]:
    return [
        str(e["content"]["body"])
        for e in user.messages(room)
        if e["sender"] == bot and e["content"].get("msgtype") == "m.notice"
    ]


def fail_card(store: CardStore, card_id: str, reason: str) -> None:
    store.create(NewCard(card_id, f"work {card_id}"))
    claim = store.claim("orch", "orchestrator", store.host, 600.0, card_id=card_id)
    assert claim is not None
    store.fail(card_id, claim.token, reason)


def failures_told(bodies: list[str], prefix: str) -> int:
    """How many failures of cards named ``prefix-…`` the notices count or name."""
    told = 0
    for line in "\n".join(bodies).splitlines():
        counted = re.match(rf"fleet: (\d+) cards failed: {prefix}-", line)
        if counted:
            told += int(counted.group(1))
        elif re.match(rf"fleet: card {prefix}-\d+ failed", line):
            told += 1
    return told


def alias_room(user: MatrixUser, name: str, invite: list[str]) -> tuple[str, str]:
    body = {"preset": "private_chat", "invite": invite, "room_alias_name": name}
    answer = user.call("POST", "/createRoom", body)
    return f"#{name}:localhost", str(answer["room_id"])


def test_notices_once_each_to_a_room_named_by_its_alias_across_a_restart(
    synapse: Synapse,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    tag = os.urandom(3).hex()
    alice, bot = f"alice{tag}", f"fleet{tag}"
    synapse.register(alice, f"{alice}-pw")
    bot_id = synapse.register(bot, BOT_PASSWORD)
    op = synapse.login(alice, f"{alice}-pw")
    alias, room_id = alias_room(op, f"notices{tag}", [bot_id])
    block = synapse.connector_block(bot_id, alias, [op.user_id])
    block["rooms"][alias]["notices"] = True
    start_stub_orchestrator(settings, block, work=0.2)
    store = CardStore.from_settings(settings)
    fail_card(store, "OLD-1", "before the connector ever ran")  # history: never told
    cursors = cursor_path(settings.run_dir, "matrix")
    log = tmp_path / "connector.log"
    wait = scaled(60)
    try:
        with explained(settings, store, log), connector(settings, log) as proc:
            wait_until(lambda: bot_id in op.joined(room_id), wait, what="the bot joined")
            wait_until(lambda: alive(proc) and cursors.exists(), wait, what="the notice cursor")
            # The alias's room is the room whose allow-list applies: alice is answered there.
            asked = op.say(room_id, "hello through the alias")
            wait_until(lambda: bot_replies(op, room_id, bot_id).get(asked), wait, what="the reply")
            fail_card(store, "C-1", "tests red")
            wait_until(
                lambda: failures_told(notices(op, room_id, bot_id), "C") == 1,
                wait, what="the failed card's notice",
            )  # fmt: skip
            told = len(notices(op, room_id, bot_id))
            started = time.monotonic()
            for i in range(BURST):
                fail_card(store, f"B-{i}", f"burst {i}")
            store.pause("deploy freeze", by="alice")
            burst_took = time.monotonic() - started
            paused_id = store.events(kind=EventKind.PAUSED, limit=1)[0].id
            wait_until(
                lambda: alive(proc) and (NoticeCursors(cursors).get(alias) or 0) >= paused_id,
                wait, what="the pause told and its cursor kept",
            )  # fmt: skip
            os.killpg(proc.pid, signal.SIGKILL)  # no chance to say anything on the way out
            proc.wait()
        burst = notices(op, room_id, bot_id)[told:]
        assert failures_told(burst, "B") == BURST, burst
        # One message per NOTICE_GAP at most: the burst is one (two if a look fell inside it).
        assert len(burst) <= 2 + int(burst_took // NOTICE_GAP), burst
        with explained(settings, store, log), connector(settings, log) as again:
            store.resume(by="alice")
            wait_until(
                lambda: alive(again)
                and any("fleet resumed by alice" in b for b in notices(op, room_id, bot_id)),
                wait, what="the resume told after the restart",
            )  # fmt: skip
            time.sleep(scaled(2))  # a repeat would come now, if at all
    finally:
        store.close()
    bodies = notices(op, room_id, bot_id)
    text = "\n".join(bodies)
    assert "OLD-1" not in text
    assert failures_told(bodies, "C") == 1
    assert failures_told(bodies, "B") == BURST
    assert text.count("fleet paused by alice: deploy freeze") == 1
    assert text.count("fleet resumed by alice") == 1
    assert all(b.startswith("fleet: ") for b in bodies)
    assert len(bot_replies(op, room_id, bot_id)[asked]) == 1


def test_an_alias_that_does_not_resolve_stops_the_start_with_one_line(
    synapse: Synapse,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    tag = os.urandom(3).hex()
    bot_id = synapse.register(f"fleet{tag}", BOT_PASSWORD)
    missing = f"#nosuch{tag}:localhost"
    block: dict[str, Any] = synapse.connector_block(bot_id, missing, ["@alice:localhost"])
    roster = parse_roster(
        {
            "preset": "minimal",
            "agents": [{"name": "orch", "runtime": "stub", "class": "orchestrator"}],
            "connector": block,
        }
    )
    write_roster(roster, settings.effective_roster_path)
    log = tmp_path / "connector.log"
    with connector(settings, log) as proc:
        proc.wait(timeout=scaled(60))
    assert proc.returncode == 2, log.read_text()
    errors = [line for line in log.read_text().splitlines() if missing in line]
    assert len(errors) == 1, log.read_text()
    assert "does not resolve" in errors[0]
