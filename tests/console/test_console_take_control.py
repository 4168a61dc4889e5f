"""Take control (``FLEET_CONSOLE_TAKE_CONTROL=true``) in headless Chromium: keys typed into
the xterm.js view reach the stub agent's real tmux pane as they are, control keys
included, only inside a session; the session's start and end are operator events that
name the user and count the keystrokes, never hold them."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.console.conftest import ConsoleServer
from tests.console.test_console_actions import act, csrf_of
from tests.console.test_console_browser import FIRST_FRAME, on_screen, wait_in_page


@pytest.fixture
def console_extra_env() -> dict[str, str]:
    return {"FLEET_CONSOLE_TAKE_CONTROL": "true"}


def test_take_control_types_raw_keys_into_the_pane_and_is_audited(
    page: Any, console: ConsoleServer, slowness: float
) -> None:
    from workers.tmux import TmuxServer, pane_target

    pipe = console.pipeline
    server = TmuxServer.for_fleet(pipe.settings, pipe.roster)
    page.goto(console.url + "/agents/a1/terminal")
    wait_in_page(page, FIRST_FRAME, 10 * slowness, "the first frame of the pane")
    token = csrf_of(console)
    assert act(console, "/agents/a1/control/keys", token, session="x", data="nope")[0] == 409

    page.click("#take-control")
    wait_in_page(page, "Boolean(document.body.dataset.control)", 10 * slowness, "control")
    # a second operator (or tab) cannot take the same pane meanwhile
    status, said = act(console, "/agents/a1/control/take", token)
    assert status == 409 and said.startswith("ops has control of agent a1"), said
    marker = f"raw{int(time.time() * 1000) % 100000}"
    page.locator(".xterm-helper-textarea").focus()
    page.keyboard.type(marker)
    wait_in_page(page, on_screen(marker), 5 * slowness, "the typed keys in the pane")
    pane = "\n".join(server.run("capture-pane", "-p", "-t", pane_target("a1")))
    assert marker in pane
    for _ in range(3):  # a control key arrives as itself: Backspace (0x7f) erases
        page.keyboard.press("Backspace")
    wait_in_page(page, f"!{on_screen(marker)}", 5 * slowness, "the tail erased by Backspace")
    assert on_screen(marker[:-3]) and page.evaluate(on_screen(marker[:-3]))
    page.keyboard.press("Control+u")  # the stub drops its draft: the prompt is empty again
    wait_in_page(page, "Number(document.body.dataset.keysSent) === " + str(len(marker) + 4),
                 5 * slowness, "every keystroke sent")  # fmt: skip
    assert not any(marker[:-3] in m for m in pipe.messages("a1")), "no Enter: nothing submitted"

    page.click("#give-back")
    wait_in_page(page, "!document.body.dataset.control", 10 * slowness, "control given back")
    page.keyboard.type("ignored")
    time.sleep(0.3)
    assert "ignored" not in "\n".join(server.run("capture-pane", "-p", "-t", pane_target("a1")))

    details = [e.detail or "" for e in pipe.store.events(kind="operator") if e.agent == "a1"]
    assert len(details) == 2, details
    took = re.fullmatch(r"by ops: took control of the pane \(session ([0-9a-f]{16})\)", details[0])
    assert took is not None, details[0]
    keys = len(marker) + 4
    assert re.fullmatch(
        rf"by ops: gave back control \(session {took.group(1)}, {keys} keystrokes in \d+ s\)",
        details[1],
    ), details[1]
    assert marker not in details[1]
