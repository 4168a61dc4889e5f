"""Who may use the console and how a write proves it came from the console's own page.

- Login, one of two:
  - the console token: a random secret the console writes at start to
    ``FLEET_HOME/run/console.token`` (0600 in the 0700 run directory), so only the
    fleet's own user can read it. ``/login`` exchanges it for a session cookie
    (HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it)
    signed with an HMAC under a secret made at start, so a restart ends every session;
  - HTTP basic auth against ``FLEET_BOARD_AUTH=user:password`` (constant-time compare),
    for scripts and for a console behind a proxy; set, no token file is written.
  Without ``FLEET_BOARD_AUTH`` the console listens on loopback only
  (``serving.refuse_open_bind``). ``/healthz`` and ``/login`` need no login and show
  nothing of the fleet; any other page sends a stranger to ``/login`` and any other
  route answers 401, with no card or agent in the answer.
- Actor: the basic-auth user, or for a token login the local user who could read the
  token file; written into every action's audit event.
- Read-only (``--read-only``, ``FLEET_CONSOLE_READ_ONLY``): every write is refused with
  403 and one line, before any route runs.
- CSRF: every POST carries the page's token (header ``X-CSRF-Token`` or form field
  ``csrf``), an HMAC of the user under a secret made at start, and a request with an
  ``Origin`` must come from the console's own origin. A cross-site form can neither
  read the token nor pass the Origin check.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet_queue.errors import UsageError
from fleet_queue.settings import reveal

REALM = "fleet board"
ANONYMOUS = "anonymous"
OPEN_PATHS = frozenset({"/healthz", "/login"})
LOGOUT = "/logout"
"""Ends the session cookie; allowed in read-only mode too (it changes nothing of the fleet)."""
OPEN_PREFIX = "/static/"
"""The console's own stylesheet and scripts (no fleet data): the login page needs them."""
SESSION_COOKIE = "fleet_console"
SESSION_SECONDS = 12 * 3600
"""A session cookie is good for this long (and never past the console's restart)."""
READS = frozenset({"GET", "HEAD"})
READ_ONLY_REFUSAL = "refused: this console is read-only (--read-only)"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer makes a form's Origin "null"
    # scripts only from the console itself; xterm.js sets inline styles
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}


def check_auth(secret: SecretStr | str | None) -> tuple[str, bytes] | None:
    """``FLEET_BOARD_AUTH`` as (user, the bytes a client's credentials must equal)."""
    auth = reveal(secret)
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise UsageError("FLEET_BOARD_AUTH must be user:password, both non-empty")
    return user, auth.encode()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_owner() -> str:
    """Who a token login acts as: the local user, the only one who can read the file."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


@dataclass(frozen=True)
class Guard:
    """The logins (basic auth, the console token; neither: anyone, loopback only), the
    secret the session cookies and CSRF tokens are signed with, and read-only mode."""

    credentials: tuple[str, bytes] | None
    token: str | None = None
    read_only: bool = False
    token_actor: str = field(default_factory=token_owner)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def actor(self, request: Request) -> str | None:
        """The logged-in user, ``anonymous`` without any login, None when refused."""
        if self.credentials is None and self.token is None:
            return ANONYMOUS
        session = self.session_actor(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            return session
        return self.basic_actor(request)

    def basic_actor(self, request: Request) -> str | None:
        if self.credentials is None:
            return None
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, expected = self.credentials
        return user if hmac.compare_digest(given, expected) else None

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def session_cookie(self, now: float | None = None) -> str:
        """``actor.expires.signature``: the signature covers both, so neither can be changed."""
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        claim = f"{self.token_actor}.{expires}"
        return f"{claim}.{self._sign('session', claim)}"

    def session_actor(self, cookie: str) -> str | None:
        claim, _, signature = cookie.rpartition(".")
        actor, _, expires = claim.rpartition(".")
        if not actor or not expires.isdigit():
            return None
        if not hmac.compare_digest(signature, self._sign("session", claim)):
            return None
        return actor if int(expires) > time.time() else None

    def csrf_token(self, actor: str) -> str:
        return self._sign("csrf", actor)

    def _sign(self, purpose: str, value: str) -> str:
        """Separate purposes, so a CSRF token is never a valid cookie signature."""
        message = f"{purpose}\0{value}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def write_refusal(self, request: Request, actor: str, form_token: str | None) -> str | None:
        """Why this POST is refused (None: it may go on)."""
        origin = foreign_origin(request)
        if origin is not None:
            return f"refused: the request comes from {origin}, not from the console"
        given = request.headers.get("x-csrf-token") or form_token or ""
        if not hmac.compare_digest(given, self.csrf_token(actor)):
            return "refused: missing or wrong CSRF token (reload the page)"
        return None


def foreign_origin(request: Request) -> str | None:
    origin = request.headers.get("origin")
    return origin if origin is not None and origin != own_origin(request) else None


def own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def wants_page(request: Request) -> bool:
    """A browser navigating to a page (sent to ``/login``), not to an API or an event
    stream (401, even in a browser's address bar)."""
    path = request.url.path
    if path.startswith("/api/") or path == "/live" or path.endswith("/screen"):
        return False
    return request.method in READS and "text/html" in request.headers.get("accept", "")


class AuthMiddleware:
    """Before any route but ``OPEN_PATHS``: a stranger is sent to ``/login`` (a page) or
    answered 401 (with a basic-auth challenge when basic auth is on); in read-only mode a
    write is refused (403). The actor is left in ``scope["state"]["actor"]``; every
    answer gets ``SECURITY_HEADERS``."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        request = Request(scope)
        if request.url.path in OPEN_PATHS or request.url.path.startswith(OPEN_PREFIX):
            await self.app(scope, receive, with_headers)
            return
        actor = self.guard.actor(request)
        response: Response | None = None
        if actor is None:
            response = self.stranger(request)
        elif self.guard.read_only and request.method not in READS and request.url.path != LOGOUT:
            response = JSONResponse({"ok": False, "message": READ_ONLY_REFUSAL}, status_code=403)
        if response is not None:
            await response(scope, receive, with_headers)
            return
        scope.setdefault("state", {})["actor"] = actor
        await self.app(scope, receive, with_headers)

    def stranger(self, request: Request) -> Response:
        if self.guard.token is not None and wants_page(request):
            return RedirectResponse("/login", status_code=303)
        headers = {}
        if self.guard.credentials is not None:
            headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
        return PlainTextResponse("login required\n", status_code=401, headers=headers)
