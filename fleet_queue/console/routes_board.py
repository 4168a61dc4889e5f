"""Reading routes: the page, the card detail, the JSON APIs, the health check, and the
live stream (server-sent events) that keeps the agents panel and the board current."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fleet_queue.board import Board, build_board
from fleet_queue.console.state import Console, actor_of, console_of, templates
from fleet_queue.console.views import (
    COLUMN_TITLES,
    agent_views,
    card_detail,
    card_facts,
    card_marks,
)
from fleet_queue.errors import StoreUnavailableError


def panels(console: Console) -> dict[str, Any]:
    """What the agents panel and the board are drawn from (one read of the store)."""
    roster = console.roster()
    board = build_board(console.store, console.limit, roster)
    agents = agent_views(console.store, roster, console.settings, board, console.local_agents())
    return {
        "board": board,
        "agents": agents,
        "titles": COLUMN_TITLES,
        "facts": card_facts,
        "marks": card_marks,
        "host": console.settings.host,
        "read_only": console.read_only,
    }


def fragments(console: Console) -> dict[str, str]:
    """The live parts of the page as HTML, one per event name."""
    data = panels(console)
    return {
        name: templates.get_template(f"_{name}.html").render(data)
        for name in ("header", "agents", "columns")
    }


async def page(request: Request) -> Response:
    console = console_of(request)
    data = await anyio.to_thread.run_sync(panels, console)
    actor = actor_of(request)
    context = {**data, "actor": actor, "csrf": console.guard.csrf_token(actor)}
    return templates.TemplateResponse(request, "board.html", context)


async def card(request: Request) -> Response:
    console = console_of(request)
    card_id = request.path_params["card_id"]
    detail = await anyio.to_thread.run_sync(card_detail, console.store, card_id, console.roster())
    actor = actor_of(request)
    context = {
        "detail": detail,
        "actor": actor,
        "csrf": console.guard.csrf_token(actor),
        "agents": sorted(a.name for a in (console.roster() or _no_roster()).agents),
        "read_only": console.read_only,
    }
    return templates.TemplateResponse(request, "card.html", context)


def _no_roster() -> Any:
    from fleet_queue.roster import Roster

    return Roster()


async def api_board(request: Request) -> Response:
    console = console_of(request)
    board: Board = await anyio.to_thread.run_sync(
        build_board, console.store, console.limit, console.roster()
    )
    return Response(json.dumps(board.to_dict(), indent=2), media_type="application/json")


async def api_agents(request: Request) -> Response:
    console = console_of(request)
    data = await anyio.to_thread.run_sync(panels, console)
    rows = [
        {
            **view.row.as_dict(),
            "card_seconds": view.card_seconds,
            "local": view.local,
            "paused": view.paused,
        }
        for view in data["agents"]
    ]
    return JSONResponse(rows)


async def health(request: Request) -> Response:
    try:
        await anyio.to_thread.run_sync(console_of(request).store.now)
    except StoreUnavailableError:
        return PlainTextResponse("store unreachable\n", status_code=503)
    return PlainTextResponse("ok\n")


async def live(request: Request) -> Response:
    """Every ``interval`` seconds, each part of the page that changed, as its own event;
    ``down`` while the store does not answer, and everything again once it does."""
    console = console_of(request)

    async def events() -> AsyncIterator[dict[str, str]]:
        last: dict[str, str] = {}
        while True:
            try:
                now = await anyio.to_thread.run_sync(fragments, console)
            except StoreUnavailableError:
                if last.get("down") is None:
                    last = {"down": "the card store is not reachable"}
                    yield {"event": "down", "data": last["down"]}
            else:
                for name, html in now.items():
                    if last.get(name) != html:
                        yield {"event": name, "data": html}
                last = now
            await asyncio.sleep(console.interval)

    return EventSourceResponse(events(), ping=15)


def routes() -> list[Route]:
    return [
        Route("/", page),
        Route("/cards/{card_id}", card),
        Route("/api/board", api_board),
        Route("/api/agents", api_agents),
        Route("/healthz", health),
        Route("/live", live),
    ]
