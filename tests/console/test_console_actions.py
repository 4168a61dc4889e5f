"""The console's card actions over real HTTP, as the page's script sends them (JSON with
the CSRF token of the page): each one changes the store and leaves an ``operator`` event
that names the logged-in user; a refused one changes nothing and says why in one line."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from typing import Any

from fleet_queue.cards import CardStatus
from tests.console.conftest import PASSWORD, USER, ConsoleServer

LOGIN = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def csrf_of(console: ConsoleServer) -> str:
    req = urllib.request.Request(console.url + "/", headers={"Authorization": LOGIN})
    with urllib.request.urlopen(req, timeout=10) as reply:
        page = reply.read().decode()
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
    assert found is not None
    return found.group(1)


def act(console: ConsoleServer, path: str, token: str, **fields: Any) -> tuple[int, str]:
    req = urllib.request.Request(
        console.url + path,
        method="POST",
        data=json.dumps(fields).encode(),
        headers={
            "Authorization": LOGIN,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-CSRF-Token": token,
            "Origin": console.url,
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, json.loads(reply.read())["message"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["message"]


def test_card_actions_change_the_store_and_are_audited(console: ConsoleServer) -> None:
    store = console.pipeline.store
    token = csrf_of(console)
    status, said = act(console, "/cards/new", token, id="K1", title="from the page", priority=3)
    assert (status, said) == (200, "created card K1")
    assert store.get("K1").priority == 3

    assert act(console, "/cards/K1/block", token, reason="needs a key")[0] == 200
    assert store.get("K1").status is CardStatus.BLOCKED
    assert store.get("K1").reason == "needs a key (by ops)"
    assert act(console, "/cards/K1/retarget", token, target_agent="a1")[0] == 200
    assert store.get("K1").target_agent == "a1"
    assert act(console, "/cards/K1/retry", token)[0] == 200
    assert store.get("K1").status is CardStatus.READY

    # refused: one line, nothing changed
    assert act(console, "/cards/K1/unblock", token) == (
        409,
        "card 'K1' is ready; only blocked or failed cards can be unblocked",
    )
    assert act(console, "/cards/K1/retarget", token, target_agent="a1", target_class="x")[0] == 400
    assert act(console, "/cards/NOPE/block", token)[0] == 404
    assert act(console, "/cards/new", token, title="")[0] == 400
    assert store.get("K1").target_agent == "a1"

    details = [(e.card_id, e.detail) for e in store.events(kind="operator")]
    assert details == [
        ("K1", "by ops: created card K1"),
        ("K1", "by ops: blocked it: needs a key"),
        ("K1", "by ops: aimed at agent a1"),
        ("K1", "by ops: retried it (was blocked)"),
    ]
    page = urllib.request.Request(console.url + "/cards/K1", headers={"Authorization": LOGIN})
    with urllib.request.urlopen(page, timeout=10) as reply:
        detail = reply.read().decode()
    for text in ("from the page", "by ops: aimed at agent a1", "History", "Needed by"):
        assert text in detail
