"""The web board: ``fleet board --serve``, the board over HTTP for every host to see.

Standard library only (``http.server``), read-only, server-rendered:

- ``GET /``: the board as an HTML page that reloads itself (``<meta http-equiv=refresh>``),
  no script at all; every piece of card text goes through ``html.escape``;
- ``GET /api/board``: the same data as ``fleet board --json``;
- ``GET /healthz``: ``ok`` while the store answers (no login, shows nothing of the fleet).

With ``FLEET_BOARD_AUTH=user:password`` the board and its API ask for HTTP basic auth;
without it the server listens on loopback only (the rule ``fleet flower`` follows).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fleet_queue.board import (
    Board,
    BoardCard,
    BoardColumn,
    board_roster,
    build_board,
    lease_left,
    short_duration,
    target_of,
)
from fleet_queue.errors import StoreUnavailableError, UsageError

if TYPE_CHECKING:
    from fleet_queue.settings import Settings
    from fleet_queue.store import CardStore

log = logging.getLogger(__name__)

REALM = "fleet board"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # no script may run on the page, and no other site may frame it
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
}


def check_auth(auth: str | None) -> bytes | None:
    """``FLEET_BOARD_AUTH`` as the bytes a client's credentials must equal (None: no login)."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise UsageError("FLEET_BOARD_AUTH must be user:password, both non-empty")
    return auth.encode()


class BoardServer(ThreadingHTTPServer):
    """One board server: the store it reads, the login it asks for, how often pages reload."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: CardStore,
        *,
        limit: int,
        refresh: int,
        credentials: bytes | None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.store = store
        self.limit = limit
        self.refresh = refresh
        self.credentials = credentials
        self.settings: Settings | None = None
        """Where the board reads the roster from for its wait reasons (``serve_board``)."""
        super().__init__(address, BoardHandler)


class BoardHandler(BaseHTTPRequestHandler):
    """GET and HEAD only; every other method is refused and nothing is ever written."""

    server: BoardServer
    server_version = "fleet-board"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _refuse_method(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "text/plain",
            b"read-only: GET only\n",
            {"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse_method

    def _answer(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        routes: dict[str, Callable[[], tuple[str, bytes]]] = {
            "/": self._page,
            "/api/board": self._api,
        }
        if path == "/healthz":
            self._health(send_body)
            return
        if path not in routes:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n", body=send_body)
            return
        if not self._authorized():
            self._send(
                HTTPStatus.UNAUTHORIZED,
                "text/plain",
                b"login required\n",
                {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
                body=send_body,
            )
            return
        try:
            content_type, payload = routes[path]()
        except StoreUnavailableError as exc:  # the store is down: say so, keep serving
            log.warning("board unavailable: %s", str(exc).splitlines()[0])
            self._send(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "text/plain",
                b"the card store is not reachable\n",
                body=send_body,
            )
            return
        self._send(HTTPStatus.OK, content_type, payload, body=send_body)

    def _authorized(self) -> bool:
        expected = self.server.credentials
        if expected is None:
            return True
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, expected)

    def _board(self) -> Board:
        settings = self.server.settings
        roster = board_roster(settings) if settings is not None else None
        return build_board(self.server.store, self.server.limit, roster)

    def _page(self) -> tuple[str, bytes]:
        html = render_page(self._board(), self.server.refresh)
        return "text/html; charset=utf-8", html.encode()

    def _api(self) -> tuple[str, bytes]:
        return "application/json", json.dumps(self._board().to_dict(), indent=2).encode()

    def _health(self, send_body: bool) -> None:
        try:
            self.server.store.now()
        except StoreUnavailableError as exc:
            log.warning("health check: %s", str(exc).splitlines()[0])
            self._send(
                HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"store unreachable\n", body=send_body
            )
            return
        self._send(HTTPStatus.OK, "text/plain", b"ok\n", body=send_body)

    def _send(
        self,
        status: HTTPStatus,
        content_type: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        *,
        body: bool = True,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(payload)


def serve_board(
    settings: Settings,
    bind: str,
    port: int,
    *,
    limit: int,
    refresh: int,
    on_ready: Callable[[str], None],
) -> None:
    """Serve the board until SIGINT or SIGTERM; ``on_ready`` gets the URL once it listens."""
    from fleet_queue.composition import open_card_store
    from fleet_queue.serving import refuse_open_bind, stop_on_signals

    refuse_open_bind("the board", bind, settings.board_auth, "FLEET_BOARD_AUTH")
    credentials = check_auth(settings.board_auth)
    store = open_card_store(settings)
    try:
        try:
            server = BoardServer(
                (bind, port), store, limit=limit, refresh=refresh, credentials=credentials
            )
        except OSError as exc:
            raise UsageError(f"cannot serve the board on {bind}:{port}: {exc.strerror}") from None
        server.settings = settings
        with server, stop_on_signals() as stop:
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
            )
            thread.start()
            host, real_port = server.server_address[:2]
            host = host.decode() if isinstance(host, bytes) else host
            shown = f"[{host}]" if ":" in host else host
            on_ready(f"http://{shown}:{real_port}/")
            while not stop.wait(0.25) and thread.is_alive():
                pass
            server.shutdown()
            thread.join()
    finally:
        store.close()


# --- the page ------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.35 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#172b4d}
header{padding:10px 16px;background:#253858;color:#fff}
header h1{font-size:18px;margin:0 0 4px}
.paused{background:#de350b;color:#fff;padding:6px 16px;font-weight:bold}
.board{display:flex;gap:10px;padding:12px;align-items:flex-start;overflow-x:auto}
.col{flex:1 1 0;min-width:190px;background:#ebecf0;border-radius:6px;padding:6px}
.col h2{font-size:13px;text-transform:uppercase;margin:4px 4px 8px;color:#5e6c84}
.card{background:#fff;border-radius:4px;padding:6px 8px;margin-bottom:6px;
box-shadow:0 1px 1px #091e4240;overflow-wrap:anywhere}
.id{font-weight:bold}.pri{float:right;color:#5e6c84}
.meta{color:#5e6c84;font-size:12px}.reason{color:#bf2600;font-size:12px}
.more{color:#5e6c84;font-size:12px;padding:2px 4px}
"""


def render_page(board: Board, refresh: int) -> str:
    """The board as one HTML page; every text from a card or the store is escaped."""
    counts = " · ".join(f"{escape(k)} {v}" for k, v in board.counts.items())
    pause = ""
    if board.pause.paused:
        by = f" by {board.pause.by}" if board.pause.by else ""
        pause = (
            f'<div class="paused">PAUSED{escape(by)}: '
            f"{escape(board.pause.reason or 'no reason')}</div>"
        )
    columns = "".join(_column_html(column) for column in board.columns)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{int(refresh)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>fleet board: {escape(board.tenant)}</title><style>{_STYLE}</style></head>"
        f"<body><header><h1>fleet board: {escape(board.tenant)}</h1>"
        f'<div class="meta" style="color:#dfe1e6">{counts} · '
        f"{escape(board.now.strftime('%Y-%m-%d %H:%M:%S'))} UTC</div></header>"
        f'{pause}<main class="board">{columns}</main></body></html>\n'
    )


def _column_html(column: BoardColumn) -> str:
    cards = "".join(_card_html(card, column.key) for card in column.cards)
    more = f'<div class="more">+{column.hidden} more</div>' if column.hidden else ""
    return (
        f'<section class="col" id="col-{escape(column.key)}">'
        f"<h2>{escape(column.key)} ({column.count})</h2>{cards}{more}</section>"
    )


def _card_html(card: BoardCard, column: str) -> str:
    meta = [target_of(card)]
    if card.lease_owner and column not in ("ready", "waiting", "blocked"):
        meta.append(f"{card.lease_owner} #{card.token}")
    if column == "waiting":
        meta.append(f"waits for {card.unmet_deps}")
    meta.append(f"age {short_duration(card.age_seconds)}")
    meta.append(f"here {short_duration(card.in_column_seconds)}")
    if column in ("claimed", "delivered"):
        meta.append(f"lease {lease_left(card)}")
    reason = f'<div class="reason">{escape(card.reason)}</div>' if card.reason else ""
    return (
        f'<div class="card" id="card-{escape(card.id)}">'
        f'<span class="id">{escape(card.id)}</span><span class="pri">p{card.priority}</span>'
        f"<div>{escape(card.title)}</div>"
        f'<div class="meta">{escape(" · ".join(meta))}</div>{reason}</div>'
    )
