"""Logging in to the console with its token, in Debian's Chromium and over plain HTTP:
``fleet board --serve`` without ``FLEET_BOARD_AUTH`` writes a token only its user can
read; ``/login`` trades it for an HttpOnly, SameSite=Strict session cookie; a stranger
is sent to ``/login`` or refused, and sees no card and no agent."""

from __future__ import annotations

import http.client
import stat
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.cards import NewCard
from tests.console.conftest import ConsoleServer
from tests.support.poll import wait_until

SECRET_TEXT = "the launch codes are 0000"


@pytest.fixture
def console_extra_env() -> dict[str, str]:
    return {"FLEET_BOARD_AUTH": ""}  # no basic auth: the console token is the login


def token_file(console: ConsoleServer) -> Path:
    return console.pipeline.settings.run_dir / "console.token"


def read_token(console: ConsoleServer, slowness: float) -> str:
    path = token_file(console)
    wait_until(path.is_file, timeout=10 * slowness, what="the console token file")
    return path.read_text().strip()


def request(
    console: ConsoleServer, method: str, path: str, body: str = "", **headers: str
) -> tuple[int, dict[str, str], str, list[str]]:
    """One request, redirects not followed: (status, headers, body, Set-Cookie lines)."""
    url = urllib.parse.urlsplit(console.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        if body:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body.encode() or None, headers=headers)
        reply = conn.getresponse()
        cookies = reply.headers.get_all("Set-Cookie") or []
        return reply.status, dict(reply.headers), reply.read().decode(), cookies
    finally:
        conn.close()


def test_token_login_in_the_browser(chromium: Any, console: ConsoleServer, slowness: float) -> None:
    token = read_token(console, slowness)
    path = token_file(console)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert console.proc.stdout is not None
    lines = [console.proc.stdout.readline() for _ in range(2)]
    assert lines[0].startswith("serving the board on ")
    assert lines[1].strip() == f"log in: {console.url}/login?token={token}"

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(console.url + "/")
        assert page.url == console.url + "/login"  # a stranger is sent to log in
        assert "a1" not in page.content()
        page.fill("#token", "not-" + token)
        page.click("#log-in")
        assert "not this console's token" in page.locator("#login-error").inner_text()
        assert context.cookies() == []
        page.goto(console.url + "/api/agents")
        assert "login required" in page.content()

        page.goto(console.url + "/login")
        page.fill("#token", token)
        page.click("#log-in")
        page.locator("#agent-a1").wait_for(timeout=10_000 * slowness)
        assert page.url == console.url + "/"
        (cookie,) = context.cookies()
        assert cookie["name"] == "fleet_console"
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # no script can read the session

        page.click("#log-out")
        page.wait_for_url(console.url + "/login", timeout=10_000 * slowness)
        assert context.cookies() == []
        page.goto(console.url + "/api/agents")
        assert "login required" in page.content()
    finally:
        context.close()

    link = chromium.new_context()
    try:
        page = link.new_page()
        page.goto(f"{console.url}/login?token={token}")  # the link printed on stdout
        page.locator("#agent-a1").wait_for(timeout=10_000 * slowness)
        assert page.url == console.url + "/", "the token must not stay in the address"
    finally:
        link.close()


def test_cookie_is_httponly_strict_and_signed(console: ConsoleServer, slowness: float) -> None:
    token = read_token(console, slowness)
    status, headers, _, cookies = request(console, "POST", "/login", f"token={token}")
    assert (status, headers["location"]) == (303, "/")
    (set_cookie,) = cookies
    parts = {p.strip().split("=")[0].lower(): p.strip() for p in set_cookie.split(";")}
    assert "httponly" in parts and parts["samesite"].lower() == "samesite=strict"
    assert parts["path"] == "Path=/"
    session = set_cookie.split(";")[0]
    assert request(console, "GET", "/api/agents", Cookie=session)[0] == 200

    name, _, value = session.partition("=")
    claim, _, signature = value.strip('"').rpartition(".")
    user, _, expires = claim.rpartition(".")
    forged = f'{name}="{user}x.{expires}.{signature}"'  # another user, same signature
    later = f'{name}="{user}.{int(expires) + 10**6}.{signature}"'  # a longer life
    for cookie in (forged, later, f"{name}=junk"):
        assert request(console, "GET", "/api/agents", Cookie=cookie)[0] == 401

    wrong = request(console, "POST", "/login", "token=guess")
    assert wrong[0] == 401 and wrong[3] == []
    foreign = request(console, "POST", "/login", f"token={token}", Origin="http://evil.example")
    assert foreign[0] == 403 and foreign[3] == []


def test_nothing_of_the_fleet_without_a_login(console: ConsoleServer, slowness: float) -> None:
    store = console.pipeline.store
    store.create(NewCard(id="S1", title="secret title", body=SECRET_TEXT))
    read_token(console, slowness)
    paths = ["/", "/cards/S1", "/api/board", "/api/agents", "/live", "/agents/a1/terminal",
             "/agents/a1/screen"]  # fmt: skip
    for path in paths:
        for accept in ("text/html", "application/json", "text/event-stream"):
            status, headers, body, _ = request(console, "GET", path, Accept=accept)
            if accept == "text/html" and path in ("/", "/cards/S1", "/agents/a1/terminal"):
                assert (status, headers.get("location")) in ((303, "/login"), (401, None)), path
            else:
                assert status == 401, (path, accept, status)
            for leak in ("secret title", SECRET_TEXT, "a1"):
                assert leak not in body, (path, accept, leak)
    # the open static files do not lead elsewhere
    assert request(console, "GET", "/static/../api/board")[0] == 404
    login = request(console, "GET", "/login")
    assert login[0] == 200 and "secret" not in login[2] and "a1" not in login[2]
    assert request(console, "POST", "/actions/pause", "reason=x")[0] == 401
    assert request(console, "POST", "/cards/S1/block", "reason=x")[0] == 401
    assert not store.pause_state().paused
    assert store.get("S1").status.value == "ready"
    assert store.events(kind="operator") == []
