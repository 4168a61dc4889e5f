"""Delivery into real panes: byte-exact into the stub, verify accepts and rejects drafts."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from fleet_queue.errors import DeliveryError
from fleet_queue.sanitize import sanitize_text
from fleet_queue.settings import Settings
from tests.host.conftest import draft, make_roster, messages_of, stub, wait_ready
from tests.support.poll import wait_until
from workers.delivery import Deliverer
from workers.sessions import start_agents
from workers.stub_agent import log_path, read_stub_log

HOSTILE = [
    "plain words",
    "line one\nline two\n\nline four",
    "unicode: héllo wörld — ✓ 日本語 🎉 ñ",
    "a trailing semicolon;",
    "-starts with a dash",
    "shell & tmux syntax: $HOME ${X} `id` \"dq\" 'sq' \\ back \\\\ #{session_name} ; {x}",
    "escapes \x1b[31mred\x1b[0m bell\x07 backspace\x08 del\x7f c1\x9b",
    "paste end marker \x1b[201~ inside\nand after",
    "tabs\there\tand CRLF\r\nline\rcr",
    "trailing newline\n",
    "x" * 600,
    ("20 KB block " + "0123456789abcdef" * 4 + "\n") * 260,
]


def test_hostile_texts_arrive_byte_exact(host_settings: Settings) -> None:
    roster = make_roster(stub("a1"))
    start_agents(host_settings, roster)
    wait_ready(host_settings, "a1")
    messages = messages_of(host_settings, "a1")
    deliverer = Deliverer(host_settings, roster)
    try:
        for count, text in enumerate(HOSTILE, start=1):
            receipt = deliverer.deliver("a1", text, source="testhost:operator", force=True)
            assert receipt.verified is True
            expected = f"[from testhost:operator #{receipt.nonce}] " + sanitize_text(text)
            assert receipt.text == expected
            got = wait_until(
                lambda n=count: messages()[n - 1] if len(messages()) >= n else None,
                15,
                what=f"message {count}",
            )
            assert got == expected, f"message {count} differs"
            assert (receipt.method, receipt.evidence) == ("paste", "screen")
    finally:
        deliverer.close()
    assert len(messages()) == len(HOSTILE)
    assert any(len(m) > 20_000 for m in messages())


def test_verify_rejects_a_pane_that_leaves_a_draft(host_settings: Settings) -> None:
    roster = make_roster(draft("d1"))
    start_agents(host_settings, roster)
    server_ready = Deliverer(host_settings, roster, verify_timeout=0.8)
    try:
        wait_until(
            lambda: (
                "draft>"
                in "".join(server_ready.control.command("capture-pane", "-p", "-t", "=d1:"))
            ),
            15,
            what="draft prompt",
        )
        for text in ("one short line", "two\nlines", "y" * 3000):
            with pytest.raises(DeliveryError, match=r"not accepted.*draft"):
                server_ready.deliver("d1", text, source="op", force=True)
        receipt = server_ready.deliver("d1", "unchecked", source="op", force=True, verify=False)
        assert receipt.verified is None
    finally:
        server_ready.close()


def test_a_pane_being_verified_does_not_hold_up_other_agents(host_settings: Settings) -> None:
    """Verify waits for the agent to redraw; another agent's delivery must not wait with it."""
    roster = make_roster(draft("d1"), stub("a1"))
    start_agents(host_settings, roster)
    wait_ready(host_settings, "a1")
    deliverer = Deliverer(host_settings, roster, verify_timeout=4.0)
    slow_done = threading.Event()
    slow_error: list[BaseException] = []

    def slow() -> None:
        try:
            deliverer.deliver("d1", "left as a draft", source="op", force=True)
        except DeliveryError as exc:
            slow_error.append(exc)
        finally:
            slow_done.set()

    try:
        wait_until(
            lambda: (
                "draft>" in "".join(deliverer.control.command("capture-pane", "-p", "-t", "=d1:"))
            ),
            15,
            what="draft prompt",
        )
        worker = threading.Thread(target=slow)
        worker.start()
        time.sleep(0.3)  # d1's delivery is typed and now polls its pane for up to 4 s
        assert not slow_done.is_set()
        receipt = deliverer.deliver("a1", "meanwhile", source="op", force=True)
        assert receipt.verified is True
        assert not slow_done.is_set(), "a1 waited for d1's verify to time out"
        worker.join(10)
        assert slow_error and "draft" in str(slow_error[0])
    finally:
        deliverer.close()


def test_refuses_busy_dead_and_unknown(host_settings: Settings) -> None:
    roster = make_roster(stub("a1", env={"FLEET_STUB_MODE": "hang"}))
    pid = start_agents(host_settings, roster)[0].pid
    assert pid is not None
    wait_ready(host_settings, "a1")
    deliverer = Deliverer(host_settings, roster)
    try:
        deliverer.deliver("a1", "work: fleet card done C1 --token 7", source="op", force=True)
        wait_until(
            lambda: "status=busy card=C1" in (host_settings.run_dir / "a1.hb").read_text(),
            10,
            what="busy heartbeat",
        )
        with pytest.raises(DeliveryError, match="busy"):
            deliverer.deliver("a1", "are you there?", source="op")
        assert deliverer.deliver("a1", "forced", source="op", force=True).verified
        with pytest.raises(DeliveryError, match="unknown agent"):
            deliverer.deliver("nobody", "x", source="op")
        with pytest.raises(DeliveryError, match="empty message"):
            deliverer.deliver("a1", "\x1b\x07", source="op", force=True)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _dead_error(deliverer), 10, what="dead pane refused")
    finally:
        deliverer.close()


def _dead_error(deliverer: Deliverer) -> bool:
    try:
        deliverer.deliver("a1", "x", source="op", force=True, verify=False)
    except DeliveryError as exc:
        return "dead" in str(exc)
    return False


def test_stub_completes_a_card_by_running_fleet_card_done(host_settings: Settings) -> None:
    roster = make_roster(stub("a1", env={"FLEET_STUB_WORK": "0.1"}))
    start_agents(host_settings, roster)
    wait_ready(host_settings, "a1")
    deliverer = Deliverer(host_settings, roster)
    try:
        deliverer.deliver(
            "a1", "Do X.\nWhen done, run: fleet card done C9 --token 3", source="op", force=True
        )
    finally:
        deliverer.close()
    path = log_path(host_settings.run_dir, "a1")
    record = wait_until(
        lambda: next((r for r in read_stub_log(path) if r["kind"] == "command"), None),
        30,
        what="command",
    )
    assert record["argv"][-5:] == ["card", "done", "C9", "--token", "3"]
    assert record["argv"][1:3] == ["-m", "fleet_queue"]
    assert isinstance(record["exit_code"], int)
