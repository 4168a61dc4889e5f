"""``fleet board``: the board built from a real store (SQLite and PostgreSQL), its ``--json``
through the real entry point, and the web board as a real server process on loopback."""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fleet_queue import board as board_module
from fleet_queue.board import Board, build_board
from fleet_queue.cards import NewCard
from fleet_queue.settings import load_settings
from fleet_queue.store import CardStore
from tests.support.cli import run_fleet
from tests.support.poll import wait_until
from tests.support.servers import PostgresServer, free_port, wait_for_port

EVIL = "deploy <script>alert('x')</script> & more"
AUTH = ("ops", "board-pw-7")


def fill(store: CardStore) -> None:
    """One or more cards in every column of the board."""
    store.create(NewCard(id="R1", title="low ready", priority=1))
    store.create(NewCard(id="R2", title=EVIL, priority=5, target_class="coder"))
    store.create(NewCard(id="W1", title="waits for R1", depends_on=("R1",), target_agent="c0"))
    for card_id in ("C1", "C2", "B1", "F1", "D1", "D2", "D3"):
        store.create(NewCard(id=card_id, title=f"card {card_id}"))
    store.claim("a1", None, "h1", 600, card_id="C1")
    c2 = store.claim("a2", "coder", "h2", 600, card_id="C2")
    assert c2 is not None
    store.mark_delivered("C2", c2.token)
    store.block("B1", "needs a human")
    f1 = store.claim("a3", None, "h1", 600, card_id="F1")
    assert f1 is not None
    store.fail("F1", f1.token, "tests do not build")
    for card_id in ("D1", "D2", "D3"):
        claim = store.claim("a4", None, "h1", 600, card_id=card_id)
        assert claim is not None
        store.complete(card_id, claim.token, result="ok")


def ids(board: Board) -> dict[str, list[str]]:
    return {column.key: [card.id for card in column.cards] for column in board.columns}


def shape(data: dict[str, Any]) -> dict[str, Any]:
    """What must match between two boards read a moment apart (no clock readings)."""
    return {
        "tenant": data["tenant"],
        "pause": data["pause"],
        "counts": data["counts"],
        "limit": data["limit"],
        "columns": [
            {
                "key": column["key"],
                "count": column["count"],
                "cards": [
                    {k: v for k, v in card.items() if not k.endswith("_seconds")}
                    for card in column["cards"]
                ],
            }
            for column in data["columns"]
        ],
    }


# --- the board from the store -------------------------------------------------------------


def test_board_has_every_column_in_order(store: CardStore) -> None:
    fill(store)
    with CardStore(store.url, tenant="other", host="h9") as other:
        other.create(NewCard(id="X1", title="another tenant's card"))

    board = build_board(store, limit=2)

    assert ids(board) == {
        "ready": ["R2", "R1"],  # claim order: priority first
        "waiting": ["W1"],
        "claimed": ["C1"],
        "delivered": ["C2"],
        "blocked": ["B1"],
        "done": ["D3", "D2"],  # the two most recent only
        "failed": ["F1"],
    }
    counts = {column.key: column.count for column in board.columns}
    assert counts == {
        "ready": 2,
        "waiting": 1,
        "claimed": 1,
        "delivered": 1,
        "blocked": 1,
        "done": 3,
        "failed": 1,
    }
    assert board.column("done").hidden == 1
    assert board.counts == {
        "ready": 3,
        "claimed": 2,
        "blocked": 1,
        "done": 3,
        "failed": 1,
        "ready_to_claim": 2,
        "total": 10,
        "untargetable": 0,
    }
    assert board.tenant == "t1" and board.limit == 2 and not board.pause.paused


def test_board_cards_carry_lease_target_reason_and_times(store: CardStore) -> None:
    fill(store)
    board = build_board(store)
    card = {c.id: c for column in board.columns for c in column.cards}

    assert card["R2"].title == EVIL and card["R2"].target_class == "coder"
    assert card["W1"].target_agent == "c0" and card["W1"].unmet_deps == 1
    c1, c2 = card["C1"], card["C2"]
    assert (c1.lease_owner, c1.host, c1.token) == ("a1", "h1", 1)
    assert (c2.lease_owner, c2.host, c2.token) == ("a2", "h2", 1)
    assert c1.lease_left_seconds is not None and 590 < c1.lease_left_seconds <= 600
    stored_c2 = store.get("C2")
    assert c2.since == stored_c2.delivered_at and c1.since == store.get("C1").claimed_at
    assert card["B1"].reason == "needs a human" and card["F1"].reason == "tests do not build"
    assert card["D3"].since == store.get("D3").completed_at and card["D3"].reason is None
    assert card["D3"].lease_left_seconds is None
    for c in card.values():
        assert 0 <= c.in_column_seconds <= c.age_seconds < 120
    assert build_board(store, limit=0).column("done").cards == ()


def test_a_card_waiting_on_a_failed_dependency_names_it(store: CardStore) -> None:
    from fleet_queue.console.views import card_marks

    fill(store)  # F1 failed, R1 ready
    store.create(NewCard(id="W2", title="needs F1 and R1", depends_on=("F1", "R1")))
    waiting = {c.id: c for c in build_board(store).column("waiting").cards}
    assert waiting["W2"].failed_deps == ("F1",)
    assert waiting["W1"].failed_deps == ()  # R1 is only not done yet
    texts = [m.text for m in card_marks(waiting["W2"], "waiting")]
    assert texts == ["stuck: waits on F1, which failed"]
    assert card_marks(waiting["W1"], "waiting") == []


def test_board_shows_the_pause_and_is_json(store: CardStore) -> None:
    fill(store)
    store.pause("db upgrade", by="ops")
    data = build_board(store).to_dict()
    assert data["pause"]["paused"] is True and data["pause"]["reason"] == "db upgrade"
    again = json.loads(json.dumps(data))
    assert again == data
    assert [column["key"] for column in data["columns"]] == list(board_module.COLUMNS)
    assert data["columns"][0]["cards"][0]["title"] == EVIL


def test_open_columns_list_a_bounded_number_but_count_all(
    store: CardStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_many(NewCard(id=f"N{i}", title=f"n{i}", priority=i) for i in range(5))
    monkeypatch.setattr(board_module, "OPEN_LIMIT", 2)
    ready = build_board(store).column("ready")
    assert ready.count == 5 and [c.id for c in ready.cards] == ["N4", "N3"]
    assert ready.hidden == 3


def test_empty_store_gives_an_empty_board(store: CardStore) -> None:
    board = build_board(store)
    assert all(column.count == 0 and column.cards == () for column in board.columns)
    assert board.counts["total"] == 0


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def home_store(fleet_home: Path) -> Iterator[CardStore]:
    """The store ``fleet`` itself uses in this test's FLEET_HOME, with every column filled."""
    settings = load_settings()
    with CardStore(settings.effective_database_url, tenant=settings.tenant) as store:
        fill(store)
        yield store


def test_cli_json_is_the_board(home_store: CardStore) -> None:
    result = run_fleet("board", "--json", "--limit", "1")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert shape(data) == shape(build_board(home_store, limit=1).to_dict())
    assert [c["id"] for c in data["columns"][5]["cards"]] == ["D3"]


def test_cli_table_shows_every_column(home_store: CardStore) -> None:
    result = run_fleet("board")
    assert result.exit_code == 0, result.stderr
    for key in board_module.COLUMNS:
        assert key in result.stdout
    assert "R2" in result.stdout and "needs a human" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "-1"], "--limit must be 0 or more"),
        (["--interval", "0", "--watch"], "--interval must be more than 0"),
        (["--json", "--watch"], "--json and --watch do not go together"),
        (["--serve", "--json"], "--json and --serve do not go together"),
        (["--serve", "--port", "70000"], "--port must be 0-65535"),
    ],
)
def test_cli_refuses_bad_options_in_one_line(
    fleet_home: Path, args: list[str], message: str
) -> None:
    result = run_fleet("board", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"fleet: {message}") and result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_watch_redraws_until_ctrl_c(home_store: CardStore) -> None:
    """``--watch`` in a real terminal: it redraws, and Ctrl-C ends it with exit 0."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_queue", "board", "--watch", "--interval", "0.2"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    seen = bytearray()

    def frames() -> int:
        while select.select([leader], [], [], 0)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen.extend(chunk)
        return seen.count(b"fleet board default")

    try:
        wait_until(lambda: frames() >= 3, timeout=30, what="three frames of the board")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    assert b"Traceback" not in seen and b"R2" in seen


# --- the web board ---------------------------------------------------------------------------


@contextmanager
def web_board(*args: str, auth: str | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``fleet board --serve`` as its own process on a free loopback port."""
    port = free_port()
    env = dict(os.environ)
    if auth is not None:
        env["FLEET_BOARD_AUTH"] = auth
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_queue", "board", "--serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=20)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def request(
    url: str, auth: tuple[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, method=method)
    if auth is not None:
        token = base64.b64encode(":".join(auth).encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_web_board_page_api_and_health(home_store: CardStore) -> None:
    with web_board("--limit", "2", auth=":".join(AUTH)) as (url, proc):
        status, headers, page = request(f"{url}/", auth=AUTH)
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert "deploy &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in page
        assert page.count("<script") == 1 and '<script src="/static/console.js">' in page
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "needs a human" in page and "Paused by" not in page

        status, headers, body = request(f"{url}/api/board", auth=AUTH)
        assert status == 200 and headers["content-type"] == "application/json"
        assert shape(json.loads(body)) == shape(build_board(home_store, limit=2).to_dict())

        status, _, body = request(f"{url}/healthz")
        assert (status, body) == (200, "ok\n")
        assert request(f"{url}/nothing-here", auth=AUTH)[0] == 404

        # read-only: a write verb is refused and the store is as it was
        before = shape(build_board(home_store).to_dict())
        for method in ("POST", "PUT", "DELETE"):
            assert request(f"{url}/api/board", auth=AUTH, method=method)[0] == 405
        assert shape(build_board(home_store).to_dict()) == before

        home_store.pause("maintenance window", by="ops")
        assert "maintenance window" in request(f"{url}/", auth=AUTH)[2]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout is not None
        assert proc.stdout.read() == f"serving the board on {url}/ (Ctrl-C to stop)\n"


def test_web_board_asks_for_the_login(home_store: CardStore) -> None:
    # with auth the board may listen on every address; we reach it on loopback
    with web_board("--bind", "0.0.0.0", auth=":".join(AUTH)) as (url, proc):
        for path in ("/", "/api/board"):
            status, headers, body = request(f"{url}{path}")
            assert status == 401 and headers["www-authenticate"].startswith("Basic ")
            assert "R2" not in body
            assert request(f"{url}{path}", auth=("ops", "wrong"))[0] == 401
            assert request(f"{url}{path}", auth=("ops2", AUTH[1]))[0] == 401
            status, _, body = request(f"{url}{path}", auth=AUTH)
            assert status == 200 and "R2" in body
        assert request(f"{url}/healthz")[0] == 200  # no login, shows no card
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def test_web_board_without_auth_refuses_an_open_address(fleet_home: Path) -> None:
    serve = ["board", "--serve", "--bind", "0.0.0.0", "--port", str(free_port())]
    result = subprocess.run(
        [sys.executable, "-m", "fleet_queue", *serve],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "fleet: refusing to serve the board on 0.0.0.0 without auth:"
        " set FLEET_BOARD_AUTH=user:password\n"
    )
    assert result.stdout == ""


def test_board_auth_is_masked_in_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_BOARD_AUTH", "ops:s3cret-board")
    result = run_fleet("config", "--json")
    assert result.exit_code == 0, result.stderr
    assert "s3cret-board" not in result.stdout
    assert json.loads(result.stdout)["board_auth"] == "***"


@pytest.mark.postgres
def test_web_board_says_503_while_the_store_is_gone_and_keeps_serving(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    name = f"board_{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name)
    monkeypatch.setenv("FLEET_DATABASE_URL", url)
    with CardStore(url, tenant="default") as store:
        store.create(NewCard(id="B1", title="on the board"))
    with web_board(auth=":".join(AUTH)) as (base, proc):
        assert request(f"{base}/healthz")[0] == 200
        assert "on the board" in request(f"{base}/", auth=AUTH)[2]
        with psycopg.connect(
            host=pg_server.host,
            port=pg_server.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        ) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        for path in ("/", "/api/board", "/healthz"):
            status, _, body = request(f"{base}{path}", auth=AUTH)
            assert status == 503, (path, status, body)
            assert "Traceback" not in body
        assert proc.poll() is None, "the board keeps serving while the store is gone"
        pg_server.create_database(name)  # back (empty): the board answers again
        with CardStore(url, tenant="default") as store:
            store.create(NewCard(id="B2", title="after the outage"))
        wait_until(lambda: request(f"{base}/healthz")[0] == 200, 15, what="board healthy again")
        assert "after the outage" in request(f"{base}/", auth=AUTH)[2]
