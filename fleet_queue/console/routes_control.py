"""Take control: raw keystrokes from the terminal view into one agent's pane.

Only with ``FLEET_CONSOLE_TAKE_CONTROL`` set; otherwise every route here refuses in one
line and the page offers no button. Keys bypass the verified delivery path on purpose
(an operator driving a prompt, a menu, an editor), so each session is audited instead:
an ``operator`` event when it starts and one when it ends, with the number of keystrokes,
never their text. Each batch of keys is a CSRF-checked POST like every other action.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.routing import Route

from fleet_queue.audit import record
from fleet_queue.console.routes_actions import Form, action, agent_terminal
from fleet_queue.console.state import Console
from fleet_queue.errors import ConflictError, UsageError

MAX_KEYS = 4000
"""Characters of one batch of keys (a paste larger than this is refused, nothing sent)."""


def _allowed(console: Console, request: Request) -> str:
    if not console.settings.console_take_control:
        raise ConflictError("take control is off on this console (FLEET_CONSOLE_TAKE_CONTROL)")
    agent: str = request.path_params["agent"]
    agent_terminal(console, agent)
    for session in console.controls.idle(time.monotonic()):
        record(
            console.store,
            f"control ended, idle ({session.summary(time.monotonic())})",
            by=session.actor,
            agent=session.agent,
        )
    return agent


def take(console: Console, actor: str, request: Request, form: Form) -> dict[str, str]:
    agent = _allowed(console, request)
    session = console.controls.open(agent, actor)
    record(console.store, f"took control of the pane (session {session.id})", by=actor, agent=agent)
    return {"message": f"you have control of agent {agent}'s pane", "session": session.id}


def keys(console: Console, actor: str, request: Request, form: Form) -> str:
    agent = _allowed(console, request)
    data = form.get("data", "")
    if not data or len(data) > MAX_KEYS:
        raise UsageError(f"keys: 1 to {MAX_KEYS} characters at once")
    session = console.controls.use(form.get("session", ""), agent, actor, len(data))
    assert console.terminal is not None  # _allowed found the pane
    console.terminal.type_raw(agent, data)
    return f"{session.keys} keystrokes so far"


def give_back(console: Console, actor: str, request: Request, form: Form) -> str:
    agent = _allowed(console, request)
    session = console.controls.close(form.get("session", ""), agent, actor)
    record(
        console.store,
        f"gave back control ({session.summary(time.monotonic())})",
        by=actor,
        agent=agent,
    )
    return f"agent {agent}'s pane is read-only again"


def routes() -> list[Route]:
    return [
        Route("/agents/{agent}/control/take", action(take), methods=["POST"]),
        Route("/agents/{agent}/control/keys", action(keys), methods=["POST"]),
        Route("/agents/{agent}/control/end", action(give_back), methods=["POST"]),
    ]
