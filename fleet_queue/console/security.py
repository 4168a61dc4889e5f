"""Who may use the console and how a write proves it came from the console's own page.

- Login: HTTP basic auth against ``FLEET_BOARD_AUTH=user:password`` (constant-time
  compare); without it the console listens on loopback only (``serving.refuse_open_bind``).
  ``/healthz`` needs no login and shows nothing of the fleet.
- Actor: the login's user name, written into every action's audit event (``anonymous``
  when the console has no login, which loopback-only allows).
- CSRF: every POST carries the page's token (header ``X-CSRF-Token`` or form field
  ``csrf``), an HMAC of the user under a secret made at start, and a request with an
  ``Origin`` must come from the console's own origin. A cross-site form can neither
  read the token nor pass the Origin check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet_queue.errors import UsageError
from fleet_queue.settings import reveal

REALM = "fleet board"
ANONYMOUS = "anonymous"
OPEN_PATHS = frozenset({"/healthz"})
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
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


@dataclass(frozen=True)
class Guard:
    """The login (None: no login) and the secret the CSRF tokens are made with."""

    credentials: tuple[str, bytes] | None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def actor(self, request: Request) -> str | None:
        """The logged-in user, ``anonymous`` without a login, None when refused."""
        if self.credentials is None:
            return ANONYMOUS
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, expected = self.credentials
        return user if hmac.compare_digest(given, expected) else None

    def csrf_token(self, actor: str) -> str:
        return hmac.new(self.secret, actor.encode(), hashlib.sha256).hexdigest()

    def write_refusal(self, request: Request, actor: str, form_token: str | None) -> str | None:
        """Why this POST is refused (None: it may go on)."""
        origin = request.headers.get("origin")
        if origin is not None and origin != own_origin(request):
            return f"refused: the request comes from {origin}, not from the console"
        given = request.headers.get("x-csrf-token") or form_token or ""
        if not hmac.compare_digest(given, self.csrf_token(actor)):
            return "refused: missing or wrong CSRF token (reload the page)"
        return None


def own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


class AuthMiddleware:
    """401 with a basic-auth challenge before any route but ``OPEN_PATHS``; the actor is
    left in ``scope["state"]["actor"]``; every answer gets ``SECURITY_HEADERS``."""

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
        if request.url.path in OPEN_PATHS:
            await self.app(scope, receive, with_headers)
            return
        actor = self.guard.actor(request)
        if actor is None:
            response: Response = PlainTextResponse(
                "login required\n",
                status_code=401,
                headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
            await response(scope, receive, with_headers)
            return
        scope.setdefault("state", {})["actor"] = actor
        await self.app(scope, receive, with_headers)
