"""``fleet board --serve --read-only`` in Debian's Chromium: the board, card page and
terminal view work, no action is drawn (take control neither, though it is switched
on), and a write refused before any route runs: 403, one line, nothing changed."""

from __future__ import annotations

import http.client
import urllib.parse
from typing import Any

import pytest

from fleet_queue.cards import NewCard
from tests.console.conftest import ConsoleServer
from tests.console.test_console_actions import LOGIN, act, csrf_of
from tests.console.test_console_browser import FIRST_FRAME, wait_in_page

ACTIONS = "form, button, textarea:not(.xterm-helper-textarea), #take-control"


@pytest.fixture
def console_args() -> list[str]:
    return ["--read-only"]


@pytest.fixture
def console_extra_env() -> dict[str, str]:
    return {"FLEET_CONSOLE_TAKE_CONTROL": "true"}  # read-only wins


def test_read_only_console_shows_no_action(
    page: Any, console: ConsoleServer, slowness: float
) -> None:
    console.pipeline.store.create(NewCard(id="R1", title="look, do not touch"))
    page.goto(console.url + "/")
    page.locator("#agent-a1").wait_for(timeout=10_000 * slowness)
    page.locator("#card-R1").wait_for(timeout=10_000 * slowness)
    assert "read-only" in page.locator("nav.top").inner_text()
    assert page.locator(ACTIONS).count() == 0
    page.goto(console.url + "/cards/R1")
    assert "look, do not touch" in page.locator("h1").inner_text()
    assert page.locator(ACTIONS).count() == 0
    page.goto(console.url + "/agents/a1/terminal")
    wait_in_page(page, FIRST_FRAME, 10 * slowness, "the first frame of the pane")
    assert page.locator(ACTIONS).count() == 0


def test_read_only_console_refuses_every_write(console: ConsoleServer) -> None:
    store = console.pipeline.store
    store.create(NewCard(id="R2", title="stays ready"))
    token = csrf_of(console)  # a logged-in user with a good CSRF token: still refused
    refusal = (403, "refused: this console is read-only (--read-only)")
    for path in ("/actions/pause", "/cards/new", "/cards/R2/block", "/agents/a1/pause",
                 "/agents/a1/say", "/agents/a1/keys/ctrl-c", "/agents/a1/stop",
                 "/agents/a1/control/take"):  # fmt: skip
        assert act(console, path, token, reason="x", title="t") == refusal, path
    assert not store.pause_state().paused
    assert store.get("R2").status.value == "ready"
    assert [c.id for c in store.list()] == ["R2"]
    assert store.events(kind="operator") == []


def test_read_only_console_still_logs_out(console: ConsoleServer) -> None:
    """Logging out changes nothing of the fleet: read-only mode does not refuse it."""
    url = urllib.parse.urlsplit(console.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.request("POST", "/logout", headers={"Authorization": LOGIN, "Origin": console.url})
        reply = conn.getresponse()
        assert (reply.status, reply.getheader("location")) == (303, "/login")
        assert "fleet_console=" in (reply.getheader("set-cookie") or "")  # the cookie is cleared
    finally:
        conn.close()
