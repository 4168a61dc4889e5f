"""The console's application and server: ``fleet board --serve``.

Starlette routes in one module per area, Jinja2 templates (autoescaped: card text is
never markup), server-sent events for the live parts, uvicorn to serve. The socket is
bound here, before uvicorn starts, so a port in use is one line and exit 2, and the
URL printed is the real one.

A store that stops answering gives 503 ("the card store is not reachable") on every
page, API and health check, and the console keeps serving until it answers again.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from fleet_queue.console.security import AuthMiddleware, Guard, check_auth, new_token
from fleet_queue.console.state import HERE, TOKEN_FILE, XTERM, Console, TerminalFactory
from fleet_queue.errors import (
    ConflictError,
    FleetError,
    NotFoundError,
    StoreUnavailableError,
    UsageError,
)
from fleet_queue.private import write_private

if TYPE_CHECKING:
    from fleet_queue.settings import Settings

log = logging.getLogger(__name__)


def build_app(console: Console) -> Starlette:
    from fleet_queue.console import (
        routes_actions,
        routes_board,
        routes_control,
        routes_login,
        routes_terminal,
    )

    routes = [
        *routes_login.routes(),
        *routes_board.routes(),
        *routes_actions.routes(),
        *routes_terminal.routes(),
        *routes_control.routes(),
        Mount("/static", StaticFiles(directory=str(HERE / "static" / "own")), name="static"),
        Mount("/vendor/xterm", StaticFiles(directory=str(XTERM), check_dir=False), name="xterm"),
    ]
    app = Starlette(routes=routes, exception_handlers=_handlers())
    app.state.console = console
    app.add_middleware(AuthMiddleware, guard=console.guard)
    return app


def _handlers() -> dict[Any, Callable[..., Any]]:
    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("console: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return PlainTextResponse("the card store is not reachable\n", status_code=503)

    async def refused(request: Request, exc: Exception) -> Response:
        status = 400
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, ConflictError):
            status = 409
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return JSONResponse({"ok": False, "message": message}, status_code=status)

    return {StoreUnavailableError: unavailable, FleetError: refused}


def serve_console(
    settings: Settings,
    bind: str,
    port: int,
    *,
    limit: int,
    interval: float,
    on_ready: Callable[[str, str | None], None],
    terminal_factory: TerminalFactory | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (exit 0); ``on_ready`` gets the URL once it listens,
    and the login link (with the token) when the console has a token."""
    import uvicorn

    from fleet_queue.composition import open_card_store
    from fleet_queue.serving import refuse_open_bind

    refuse_open_bind("the board", bind, settings.board_auth, "FLEET_BOARD_AUTH")
    credentials = check_auth(settings.board_auth)
    token = None if credentials is not None else new_token()
    guard = Guard(credentials, token, read_only=settings.console_read_only)
    sock = _listen(bind, port)
    store = open_card_store(settings)
    console = Console(settings, store, guard, limit, interval)
    roster = console.roster()
    if terminal_factory is not None and roster is not None:
        console.terminal = terminal_factory(settings, roster)
    try:
        config = uvicorn.Config(
            build_app(console),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = _server_class()(config)
        host, real_port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{real_port}/"
        if token is not None:
            write_private(settings.run_dir / TOKEN_FILE, token + "\n")
        on_ready(url, None if token is None else f"{url}login?token={token}")
        server.run(sockets=[sock])
    finally:
        if token is not None:
            _forget_token(settings.run_dir / TOKEN_FILE, token)
        if console.terminal is not None:
            console.terminal.close()
        store.close()
        sock.close()


def _forget_token(path: Path, token: str) -> None:
    """Remove the token file unless another console has written its own since."""
    with contextlib.suppress(OSError):
        if path.read_text().strip() == token:
            path.unlink()


def _server_class() -> type[Any]:
    import uvicorn

    class QuietExitServer(uvicorn.Server):
        """Ends on SIGINT or SIGTERM with exit 0, like ``fleet up`` and the old board
        (uvicorn itself raises the signal again once it has stopped)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            signals = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return QuietExitServer


def _listen(bind: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot serve the board on {bind}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock
