"""The Matrix adapter's login check, notice ids and refusals against a real Synapse.

What an operator relies on: ``fleet connector check --online`` says as whom the bot logs
in, or that the homeserver refused its secret, and leaves no device behind nor ends the
running connector's session; a notice sent again under its id is one event in the room;
a reply into a room the bot is not in is refused for good (the service fails it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml

from fleet_queue.connector.base import ChatMessage, ChatRefusedError, ChatSecretError
from fleet_queue.connector.config import ChatConfig, RoomConfig
from fleet_queue.connector.matrix import MatrixAdapter
from fleet_queue.settings import Settings
from tests.support.cli import run_fleet
from tests.support.synapse import MatrixUser, Synapse, synapse  # noqa: F401
from tests.support.timing import scaled


def in_thread(scenario: Callable[[], Awaitable[None]]) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # see test_matrix_adapter.py
        pool.submit(asyncio.run, scenario()).result()  # type: ignore[arg-type]


def devices(user: MatrixUser) -> list[str]:
    return sorted(d["device_id"] for d in user.call("GET", "/devices")["devices"])


def test_check_logs_in_once_and_leaves_nothing_behind_notices_once_refusals_for_good(
    synapse: Synapse,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = os.urandom(3).hex()
    bot = f"fleet{tag}"
    bot_id = synapse.register(bot, "bot-pw")
    alice_id = synapse.register(f"alice{tag}", "alice-pw")
    alice = synapse.login(f"alice{tag}", "alice-pw")
    room = alice.create_room(invite=[bot_id])
    elsewhere = alice.create_room(invite=[])  # the bot is never in it
    session = synapse.login(bot, "bot-pw")  # stands for the running connector's session
    before = devices(session)
    config = ChatConfig(
        kind="matrix", homeserver=synapse.url, user_id=bot_id,
        rooms={room: RoomConfig(allow=(alice_id,), notices=True)},
    )  # fmt: skip

    async def check(**secret: str) -> str:
        adapter = MatrixAdapter(config, tmp_path, **secret)
        try:
            return await adapter.check()
        finally:
            await adapter.close()

    async def scenario() -> None:
        assert await check(password="bot-pw") == f"{bot_id} (password login)"
        with pytest.raises(ChatSecretError, match="M_FORBIDDEN"):
            await check(password="wrong")
        assert (await check(token=session.token)).startswith(f"{bot_id} (device ")
        with pytest.raises(ChatSecretError, match="M_UNKNOWN_TOKEN"):
            await check(token="syt_not_a_token")

        running = MatrixAdapter(config, tmp_path, password="bot-pw")

        async def nothing(_message: ChatMessage) -> None:
            return None

        task = asyncio.create_task(running.run(nothing))
        for _ in range(2):  # a restart tries the notice in flight again under its id
            await running.notice(room, "fleet: card C-1 failed", "0123456789abcdef0123")
        await running.notice(room, "fleet: card C-2 failed", "ffff456789abcdef0123")
        with pytest.raises(ChatRefusedError, match="M_FORBIDDEN"):
            await running.notice(elsewhere, "fleet: not here", "aaaa456789abcdef0123")
        await running.close()
        await asyncio.wait_for(task, scaled(30))

    in_thread(scenario)
    connector = config.device_id  # the running connector's own device, kept
    assert [d for d in devices(session) if d != connector] == before  # none left by check
    notices = [
        e["content"]["body"] for e in alice.messages(room)
        if e["sender"] == bot_id and e["content"].get("msgtype") == "m.notice"
    ]  # fmt: skip
    assert notices == ["fleet: card C-1 failed", "fleet: card C-2 failed"]

    # The command an operator runs: one line, as whom, or the refusal and exit 1.
    home = settings.home
    orch = {"name": "orch", "runtime": "stub", "class": "orchestrator"}
    block = synapse.connector_block(bot_id, room, [alice_id])
    roster = {"preset": "minimal", "agents": [orch], "connector": block}
    (home / "roster.yaml").write_text(yaml.safe_dump(roster))
    (home / "roster.yaml").chmod(0o600)
    monkeypatch.setenv("FLEET_HOME", str(home))
    monkeypatch.setenv("FLEET_MATRIX_PASSWORD", "bot-pw")
    run = run_fleet("connector", "check", "--online")
    assert run.exit_code == 0, run.stderr
    assert (run.exit_code, run.stdout) == (
        0,
        f"chat connector online: matrix as {bot_id} (password login)\n",
    )
    monkeypatch.setenv("FLEET_MATRIX_PASSWORD", "wrong")
    run = run_fleet("connector", "check", "--online")
    assert run.exit_code == 1
    [line] = run.stdout.splitlines()
    assert line.startswith(f"connector online: Matrix login as {bot_id} refused: M_FORBIDDEN")
    assert "wrong" not in run.stdout
    assert [d for d in devices(session) if d != connector] == before
