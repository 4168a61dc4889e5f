"""The live terminal view of one agent: a page with xterm.js, fed by server-sent events.

The stream looks at the pane every ``FRAME_POLL`` seconds (two commands on the
terminal's open tmux control client) and sends a frame only when the pane changed, so
a change is on the page within about ``FRAME_POLL`` plus the network; a still pane
costs no traffic but the keep-alive. Read-only: nothing a viewer does reaches the pane
except the explicit actions (message, Esc, Ctrl-C), which are POSTs with their audit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleet_queue.console.state import XTERM, actor_of, console_of, templates
from fleet_queue.console.terminal import KEYS
from fleet_queue.errors import FleetError, NotFoundError

FRAME_POLL = 0.1
"""Seconds between two looks at a watched pane."""


async def terminal_page(request: Request) -> Response:
    console = console_of(request)
    agent = request.path_params["agent"]
    local = await anyio.to_thread.run_sync(console.local_agents)
    actor = actor_of(request)
    context = {
        "agent": agent,
        "local": agent in local,
        "host": console.settings.host,
        "keys": list(KEYS),
        "xterm": (XTERM / "lib" / "xterm.js").is_file(),
        "actor": actor,
        "csrf": console.guard.csrf_token(actor),
        "take_control": console.settings.console_take_control and not console.read_only,
        "read_only": console.read_only,
    }
    return templates.TemplateResponse(request, "terminal.html", context)


async def screen(request: Request) -> Response:
    """``frame`` events (JSON of ``PaneFrame``) on change; ``gone`` while there is no pane."""
    console = console_of(request)
    agent = request.path_params["agent"]
    terminal = console.terminal
    if terminal is None or agent not in await anyio.to_thread.run_sync(console.local_agents):
        raise NotFoundError(f"agent {agent} has no pane on host {console.settings.host}")

    async def frames() -> AsyncIterator[dict[str, str]]:
        last = ""
        while True:
            try:
                frame = await anyio.to_thread.run_sync(terminal.frame, agent)
            except FleetError as exc:
                frame, note = None, str(exc)
            else:
                note = "no pane (stopped?)"
            data = "gone:" + note if frame is None else json.dumps(frame.to_dict())
            if data != last:
                last = data
                if frame is None:
                    yield {"event": "gone", "data": note}
                else:
                    yield {"event": "frame", "data": data}
            await asyncio.sleep(FRAME_POLL)

    return EventSourceResponse(frames(), ping=15)


def routes() -> list[Route]:
    return [
        Route("/agents/{agent}/terminal", terminal_page),
        Route("/agents/{agent}/screen", screen),
    ]
