"""Logging in with the console token: ``/login`` trades it for the session cookie.

The token comes from ``FLEET_HOME/run/console.token`` (or the link ``fleet board
--serve`` prints): pasted into the form, or in the link's ``?token=``, which is
answered with a redirect so the token does not stay in the address bar or history.
A wrong token changes nothing and says so in one line (401). The login form is a
write like any other: a POST from another origin is refused, so no site can log a
browser in to this console.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fleet_queue.console.security import (
    LOGOUT,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Guard,
    foreign_origin,
)
from fleet_queue.console.state import console_of, templates

WRONG_TOKEN = "that is not this console's token (see FLEET_HOME/run/console.token)"


async def login_page(request: Request) -> Response:
    guard = console_of(request).guard
    given = request.query_params.get("token")
    if given is not None:
        return _log_in(request, guard, given)
    return _form(request, guard, None, 200)


async def login(request: Request) -> Response:
    guard = console_of(request).guard
    origin = foreign_origin(request)
    if origin is not None:
        message = f"refused: the request comes from {origin}, not from the console"
        return _form(request, guard, message, 403)
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    return _log_in(request, guard, (fields.get("token") or [""])[0].strip())


async def logout(request: Request) -> Response:
    if foreign_origin(request) is not None:
        return _form(request, console_of(request).guard, "refused: not from the console", 403)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response


def _log_in(request: Request, guard: Guard, given: str) -> Response:
    if not guard.token_matches(given):
        return _form(request, guard, WRONG_TOKEN, 401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        guard.session_cookie(),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def _form(request: Request, guard: Guard, error: str | None, status: int) -> Response:
    context = {"error": error, "token_login": guard.token is not None}
    return templates.TemplateResponse(request, "login.html", context, status_code=status)


def routes() -> list[Route]:
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route(LOGOUT, logout, methods=["POST"]),
    ]
