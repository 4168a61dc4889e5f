"""Writing routes: every action an operator takes from the console, each one audited.

Each POST passes the CSRF and Origin checks (``security.Guard.write_refusal``), does one
thing, and leaves an ``operator`` event naming the actor (``by <user>: <what>``) beside
whatever event the store writes itself (``paused``, ``blocked``...), so
``fleet backlog events --kind operator`` lists everything done from the console. The
event is written by ``fleet_queue.audit.record``, as the CLI's are: one form for both, and
a message kept by its hash and length, never its text.

A form posted without JavaScript is answered with a redirect back (``back`` field); the
page's script asks for JSON and shows the one-line message.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from fleet_queue.audit import record, text_digest
from fleet_queue.cards import NewCard
from fleet_queue.console.state import Console, actor_of, console_of
from fleet_queue.console.terminal import KEYS, Terminal
from fleet_queue.errors import ConflictError, FleetError, UsageError
from fleet_queue.pause import pause_fleet, resume_fleet
from fleet_queue.sanitize import sanitize_text

MAX_MESSAGE = 4000
"""Characters an operator may type to an agent at once (a line reader keeps 4,095 bytes)."""

Form = dict[str, str]
Action = Callable[[Console, str, Request, Form], str | dict[str, str]]
"""Runs one action; its answer is the one line for the operator, or JSON fields with a
``message`` (the take-control session)."""


async def read_form(request: Request) -> Form:
    """The POST's fields, from JSON or a url-encoded form (no multipart: nothing uploads)."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise UsageError("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise UsageError("the request body must be a JSON object")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}
    return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}


def action(run: Action) -> Callable[[Request], Awaitable[Response]]:
    """Check the request, run ``run`` in a worker thread, answer JSON or a redirect."""

    async def endpoint(request: Request) -> Response:
        console = console_of(request)
        actor = actor_of(request)
        form = await read_form(request)
        refusal = console.guard.write_refusal(request, actor, form.get("csrf"))
        if refusal is not None:
            return JSONResponse({"ok": False, "message": refusal}, status_code=403)
        answer = await anyio.to_thread.run_sync(run, console, actor, request, form)
        if "application/json" in request.headers.get("accept", ""):
            fields = answer if isinstance(answer, dict) else {"message": answer}
            return JSONResponse({"ok": True, **fields})
        back = form.get("back", "/")
        return RedirectResponse(
            back if back.startswith("/") and not back.startswith("//") else "/", 303
        )

    return endpoint


def _text(form: Form, name: str, default: str = "") -> str:
    return " ".join(sanitize_text(form.get(name, default)).split())


# --- the fleet -----------------------------------------------------------------------------


def pause(console: Console, actor: str, request: Request, form: Form) -> str:
    reason = _text(form, "reason") or "paused from the console"
    pause_fleet(console.store, console.settings, reason, by=actor)
    record(console.store, by=actor, what=f"paused the fleet: {reason}")
    return f"the fleet is paused: {reason}"


def resume(console: Console, actor: str, request: Request, form: Form) -> str:
    resume_fleet(console.store, console.settings, by=actor)
    record(console.store, by=actor, what="resumed the fleet")
    return "the fleet is running again"


def pause_one(console: Console, actor: str, request: Request, form: Form) -> str:
    """One agent, as ``fleet agent pause NAME``: the store's pause event names the actor."""
    agent = _roster_agent(console, request)
    reason = _text(form, "reason") or "paused from the console"
    console.store.pause_agent(agent, reason, actor)
    record(console.store, by=actor, what=f"paused agent {agent}: {reason}", agent=agent)
    return f"agent {agent} is paused: {reason}"


def resume_one(console: Console, actor: str, request: Request, form: Form) -> str:
    agent = _roster_agent(console, request)
    console.store.resume_agent(agent, actor)
    record(console.store, by=actor, what=f"resumed agent {agent}", agent=agent)
    return f"agent {agent} takes cards again"


def _roster_agent(console: Console, request: Request) -> str:
    """The URL's agent, refused in one line unless the roster has it (on any host)."""
    agent: str = request.path_params["agent"]
    roster = console.roster()
    if roster is None:
        raise ConflictError("this console has no roster: no agent to pause or resume")
    roster.known(agent)
    return agent


# --- cards ---------------------------------------------------------------------------------


def create(console: Console, actor: str, request: Request, form: Form) -> str:
    from fleet_queue.api import new_card_id

    title = _text(form, "title")
    if not title:
        raise UsageError("a new card needs a title")
    try:
        priority = int(form.get("priority") or 0)
    except ValueError:
        raise UsageError(f"priority must be a whole number, not {form['priority']!r}") from None
    card = console.store.create(
        NewCard(
            id=_text(form, "id") or new_card_id(),
            title=title,
            body=sanitize_text(form.get("body", "")),
            priority=priority,
            target_agent=_text(form, "target_agent") or None,
            target_class=_text(form, "target_class") or None,
        )
    )
    record(console.store, by=actor, what=f"created card {card.id}", card=card.id)
    return f"created card {card.id}"


def block(console: Console, actor: str, request: Request, form: Form) -> str:
    card_id = request.path_params["card_id"]
    reason = _text(form, "reason") or "blocked from the console"
    console.store.block(card_id, f"{reason} (by {actor})")
    record(console.store, by=actor, what=f"blocked it: {reason}", card=card_id)
    return f"card {card_id} is blocked"


def unblock(console: Console, actor: str, request: Request, form: Form) -> str:
    card_id = request.path_params["card_id"]
    console.store.unblock(card_id)
    record(console.store, by=actor, what="unblocked it", card=card_id)
    return f"card {card_id} is ready again"


def retry(console: Console, actor: str, request: Request, form: Form) -> str:
    """A failed or blocked card goes back to ready; a claimed one is taken back from its agent."""
    card_id = request.path_params["card_id"]
    status = console.store.get(card_id).status.value
    if status in ("failed", "blocked"):
        console.store.unblock(card_id)
    elif status == "claimed":
        console.store.reclaim_card(card_id, reason=f"retried by {actor} from the console")
    else:
        raise ConflictError(f"card {card_id} is {status}: nothing to retry")
    record(console.store, by=actor, what=f"retried it (was {status})", card=card_id)
    return f"card {card_id} is ready again (was {status})"


def retarget(console: Console, actor: str, request: Request, form: Form) -> str:
    card_id = request.path_params["card_id"]
    agent, cls = _text(form, "target_agent") or None, _text(form, "target_class") or None
    console.store.retarget(card_id, agent, cls, by=actor)
    return f"card {card_id} is now for {f'agent {agent}' if agent else cls or 'any agent'}"


# --- agents (this host's panes) --------------------------------------------------------------


def agent_terminal(console: Console, agent: str) -> Terminal:
    if console.terminal is None:
        raise ConflictError("this console has no panes to act on (no roster or no tmux here)")
    if agent not in console.local_agents():
        raise ConflictError(f"agent {agent} does not run on host {console.settings.host}")
    return console.terminal


def say(console: Console, actor: str, request: Request, form: Form) -> str:
    """Butt in: the same verified delivery as a card; a busy agent refuses, nothing typed."""
    agent = request.path_params["agent"]
    text = form.get("text", "")
    if len(text) > MAX_MESSAGE:
        raise UsageError(f"a message to an agent is at most {MAX_MESSAGE} characters")
    terminal = agent_terminal(console, agent)
    try:
        proof = terminal.say(agent, text, source=f"{actor} (console)")
    except FleetError as exc:
        record(console.store, by=actor, what=f"message refused: {exc}", agent=agent)
        raise
    record(console.store, f"typed a message ({text_digest(text)}; {proof})", by=actor, agent=agent)
    return f"agent {agent} took the message: {proof}"


def press(console: Console, actor: str, request: Request, form: Form) -> str:
    agent, name = request.path_params["agent"], request.path_params["key"]
    if name not in KEYS:
        raise UsageError(f"no key {name!r} (one of: {', '.join(KEYS)})")
    agent_terminal(console, agent).press(agent, KEYS[name])
    record(console.store, by=actor, what=f"pressed {name}", agent=agent)
    return f"pressed {name} in agent {agent}'s pane"


def stop(console: Console, actor: str, request: Request, form: Form) -> str:
    agent = request.path_params["agent"]
    said = agent_terminal(console, agent).stop(agent)
    record(console.store, by=actor, what=f"stopped the agent ({said})", agent=agent)
    return said


def restart(console: Console, actor: str, request: Request, form: Form) -> str:
    agent = request.path_params["agent"]
    said = agent_terminal(console, agent).restart(agent)
    record(console.store, by=actor, what=f"restarted the agent ({said})", agent=agent)
    return said


ROUTES: dict[str, Action] = {
    "/actions/pause": pause,
    "/actions/resume": resume,
    "/agents/{agent}/pause": pause_one,
    "/agents/{agent}/resume": resume_one,
    "/cards/new": create,
    "/cards/{card_id}/block": block,
    "/cards/{card_id}/unblock": unblock,
    "/cards/{card_id}/retry": retry,
    "/cards/{card_id}/retarget": retarget,
    "/agents/{agent}/say": say,
    "/agents/{agent}/keys/{key}": press,
    "/agents/{agent}/stop": stop,
    "/agents/{agent}/restart": restart,
}


def routes() -> list[Route]:
    return [Route(path, action(run), methods=["POST"]) for path, run in ROUTES.items()]
