"""The console in a real browser: headless Chromium (Debian's) against ``fleet board --serve``
watching a stub agent in a real tmux pane. Nothing is mocked: the page's live panels come
over server-sent events, the terminal is xterm.js fed from the pane, and every click goes
through the console's CSRF-checked POSTs into the real store and the real delivery path."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from fleet_queue.cards import NewCard
from tests.console.conftest import PASSWORD, USER, ConsoleServer
from tests.support.poll import wait_until

SHOTS = Path("/tmp")


def wait_in_page(page: Any, script: str, timeout: float, what: str) -> None:
    """Poll a script in the page from here: the console's CSP forbids Playwright's own
    polling (it evaluates strings), which is as it should be."""
    wait_until(lambda: page.evaluate(script), timeout=timeout, interval=0.02, what=what)


FIRST_FRAME = "Number(document.getElementById('terminal').dataset.frames) > 0"


def on_screen(text: str) -> str:
    return f"window.fleetScreenText().includes({text!r})"


def post(url: str, auth: bool = True, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, method="POST", data=b"reason=x", headers=headers or {})
    if auth:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_console_refuses_without_login_or_token(console: ConsoleServer) -> None:
    store = console.pipeline.store
    for path in ("/", "/api/board", "/api/agents", "/live", "/cards/x", "/agents/a1/screen"):
        req = urllib.request.Request(console.url + path)
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError(f"{path} answered without a login")
        except urllib.error.HTTPError as error:
            assert error.code == 401, path
            assert "a1" not in error.read().decode()
    assert post(f"{console.url}/actions/pause", auth=False) == 401
    assert post(f"{console.url}/actions/pause") == 403  # logged in, but no CSRF token
    foreign = {"Origin": "http://evil.example", "X-CSRF-Token": "0" * 64}
    assert post(f"{console.url}/actions/pause", headers=foreign) == 403
    assert not store.pause_state().paused
    assert store.events(kind="operator") == []


def test_agents_panel_shows_the_stub_and_follows_its_state(
    page: Any, console: ConsoleServer, slowness: float
) -> None:
    pipe = console.pipeline
    page.goto(console.url + "/")
    row = page.locator("#agent-a1")
    row.wait_for(timeout=10_000 * slowness)
    assert row.get_attribute("data-state") == "available"
    assert "testhost" in row.inner_text() and "stub" in row.inner_text()
    page.evaluate("window.notReloaded = true")

    pipe.store.create(NewCard(id="W1", title="work for a1", target_agent="a1"))
    result = pipe.deliver(pipe.tick_for_one())
    assert result.get("delivered") or result.get("status") == "delivered", result
    wait_until(
        lambda: pipe.report_status() is not None
        and any(s.readiness == "working" for s in pipe.store.agent_statuses()),
        timeout=10 * slowness, what="a1 working in the store",
    )  # fmt: skip
    page.wait_for_selector('#agent-a1[data-state="working"]', timeout=10_000 * slowness)
    assert "W1" in page.locator("#agent-a1").inner_text()
    assert page.locator("#col-delivered #card-W1").count() == 1
    assert page.evaluate("window.notReloaded") is True  # live, not a reload
    page.screenshot(path=str(SHOTS / "console-board-1280.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the board is {width} px wide at 1280"
    failed = page.locator("#col-failed").bounding_box()
    assert failed is not None and failed["x"] + failed["width"] <= 1280


def test_terminal_view_shows_what_the_pane_shows(
    page: Any, console: ConsoleServer, slowness: float
) -> None:
    from workers.tmux import TmuxServer, pane_target

    pipe = console.pipeline
    server = TmuxServer.for_fleet(pipe.settings, pipe.roster)
    before = server.run("display-message", "-p", "-t", pane_target("a1"), "#{window_width}")
    page.goto(console.url + "/agents/a1/terminal")
    wait_in_page(page, FIRST_FRAME, 10 * slowness, "the first frame of the pane")
    marker = f"typed-{int(time.time() * 1000) % 100000}"
    started = time.monotonic()
    server.run("send-keys", "-t", pane_target("a1"), "-l", marker)
    wait_in_page(page, on_screen(marker), slowness + 1, "the typed text in the terminal view")
    seen_after = time.monotonic() - started
    print(f"console terminal: typed text on the page after {seen_after * 1000:.0f} ms")
    assert seen_after < 1.0 * slowness + 0.5
    after = server.run("display-message", "-p", "-t", pane_target("a1"), "#{window_width}")
    assert after == before, "watching must never resize the agent's window"
    cols = page.evaluate("window.fleetTerminal.cols")
    assert str(cols) == before[0]
    server.run("send-keys", "-t", pane_target("a1"), "C-u")  # leave the prompt empty
    page.screenshot(path=str(SHOTS / "console-terminal-1280.png"), full_page=True)


def test_butt_in_reaches_the_pane_and_is_audited(
    page: Any, console: ConsoleServer, slowness: float
) -> None:
    pipe = console.pipeline
    page.goto(console.url + "/agents/a1/terminal")
    wait_in_page(page, FIRST_FRAME, 10 * slowness, "the first frame of the pane")
    page.fill("#say-text", "please stop after this test")
    page.click("#say")
    page.wait_for_selector("#toast:not([hidden])", timeout=15_000 * slowness)
    assert "took the message" in page.locator("#toast").inner_text()
    got = pipe.messages("a1")
    assert any("please stop after this test" in m and "[from ops (console)" in m for m in got)
    wait_in_page(page, on_screen("please stop after this test"), 5 * slowness, "the message")
    audit = [e for e in pipe.store.events(kind="operator") if e.agent == "a1"]
    assert len(audit) == 1 and audit[0].detail is not None
    assert audit[0].detail.startswith("by ops: typed a message")


def test_pause_from_the_page_stops_dispatch(
    page: Any, console: ConsoleServer, slowness: float
) -> None:
    pipe = console.pipeline
    pipe.store.create(NewCard(id="P1", title="must wait for the resume"))
    page.goto(console.url + "/")
    page.fill('input[name="reason"]', "db maintenance")
    page.click("#pause")
    page.wait_for_selector(".banner.paused", timeout=10_000 * slowness)
    assert "db maintenance" in page.locator(".banner.paused").inner_text()
    state = pipe.store.pause_state()
    assert state.paused and state.by == "ops"
    pipe.tick()
    assert pipe.take_deliveries() == [], "a paused fleet dispatches nothing"
    assert pipe.store.get("P1").status.value == "ready"

    page.click("#resume")
    page.wait_for_selector("#pause", timeout=10_000 * slowness)
    assert not pipe.store.pause_state().paused
    assert [m.args[0] for m in pipe.take_deliveries() or [pipe.tick_for_one()]] == ["P1"]
    details = [e.detail for e in pipe.store.events(kind="operator")]
    assert details == ["by ops: paused the fleet: db maintenance", "by ops: resumed the fleet"]
