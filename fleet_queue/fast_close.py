"""``fleet card done|fail`` through the host worker's agent socket: standard library only.

Every agent runs ``fleet card done ID --token N`` after every card. Opening the store for
that costs SQLAlchemy, redis-py, pydantic and Typer: three quarters of a second of CPU per
card. The host worker already holds the store open (with the nudge hook), so an agent's
close is one JSON line to ``run/agent-sockets/<tenant>.sock`` and one line back; the
worker checks that the caller runs inside the pane of the agent holding the card
(``workers.agent_socket``).

This module recognises exactly ``card done ID --token N [--result TEXT] [--json]`` and
``card fail ID --token N --reason TEXT [--json]`` (``-t``/``-r`` and ``--opt=value`` too),
and prints what the full command prints, with its exit code. Anything else, no socket, a
socket nobody serves, a caller the worker does not know as an agent (the operator's own
shell), or an answer it cannot use: ``None``, and ``fleet`` runs the full command, which
opens the store itself (today's path, with ``fleet.env``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from fleet_queue.layout import DEFAULT_HOME, DEFAULT_TENANT, agent_socket_path

if TYPE_CHECKING:
    from collections.abc import Sequence

CONNECT_TIMEOUT = 2.0
"""Seconds to connect: a unix socket answers at once or nobody serves it."""
ANSWER_TIMEOUT = 60.0
"""Seconds to wait for the worker's answer: its store write may wait on a database lock."""
MAX_ANSWER = 16 * 1024 * 1024
"""A ``--json`` answer carries the card (its text is at most ``FLEET_MAX_CARD_BYTES``)."""
MAX_TOKEN = 2**63
"""Tokens are 64-bit in the store; anything else goes the full path, which says why."""

_OPTIONS = {
    "done": {"--token": "token", "-t": "token", "--result": "result"},
    "fail": {"--token": "token", "-t": "token", "--reason": "reason", "-r": "reason"},
}
"""Each command's options that take a value (``fleet_queue.cli.backlog_cmd``), by field."""
_REQUIRED = {"done": ("token",), "fail": ("token", "reason")}


def parse_close(argv: Sequence[str]) -> dict[str, Any] | None:
    """The socket request for ``argv`` (``fleet``'s arguments), or None when it is not exactly
    a close the fast path may answer: a repeated or unknown option, a value that starts with
    ``-``, a token that is not plain digits — the full command decides those."""
    if len(argv) < 3 or argv[0] != "card" or argv[1] not in _OPTIONS:
        return None
    op = argv[1]
    options = _OPTIONS[op]
    fields: dict[str, Any] = {}
    card: str | None = None
    as_json = False
    args = list(argv[2:])
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg == "--json" and not as_json:
            as_json = True
        elif name in options and options[name] not in fields:
            if eq:
                value = inline
            elif args:
                value = args.pop(0)
            else:
                return None
            if value.startswith("-"):
                return None
            fields[options[name]] = value
        elif not arg.startswith("-") and card is None:
            card = arg
        else:
            return None
    if card is None or any(field not in fields for field in _REQUIRED[op]):
        return None
    token = fields["token"]
    if not (token.isascii() and token.isdigit()) or int(token) >= MAX_TOKEN:
        return None
    request: dict[str, Any] = {"op": op, "card": card, "token": int(token), "json": as_json}
    if op == "done":
        request["result"] = fields.get("result")
    else:
        request["reason"] = fields["reason"]
    return request


def fleet_home() -> str:
    """``FLEET_HOME`` (an agent's pane has it), or the settings' own default."""
    return os.path.expanduser(os.environ.get("FLEET_HOME") or DEFAULT_HOME)


def socket_path() -> str:
    """The socket of this home's host worker for ``FLEET_TENANT`` (set in every pane)."""
    return agent_socket_path(fleet_home(), os.environ.get("FLEET_TENANT") or DEFAULT_TENANT)


def ask(path: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """One request, one answer; None when nobody answered usefully (then the full path runs).

    A close that reached the worker but lost its answer is safe to repeat the full way:
    ``done`` under the same token is a no-op that returns the card.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(CONNECT_TIMEOUT)
            conn.connect(path)
            conn.settimeout(ANSWER_TIMEOUT)
            conn.sendall(json.dumps(request).encode("utf-8") + b"\n")
            conn.shutdown(socket.SHUT_WR)
            data = _read_line(conn)
    except OSError:
        return None
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("fallback") or "ok" not in answer:
        return None
    return answer


def _read_line(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_ANSWER:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def render(request: dict[str, Any], answer: dict[str, Any]) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) exactly as ``fleet card done|fail`` prints them."""
    if not answer.get("ok"):
        code = answer.get("code")
        error = str(answer.get("error") or "the host worker refused the close")
        return "", f"fleet: {error}\n", code if isinstance(code, int) and code else 1
    card = answer.get("card")
    if not isinstance(card, dict):
        raise ValueError("an answer without its card")
    if request["json"]:
        return json.dumps(card, indent=2, default=str) + "\n", "", 0
    what = "done" if request["op"] == "done" else f"failed: {card.get('reason')}"
    return f"{card.get('id')}: {what}\n", "", 0


def close_answer(argv: Sequence[str]) -> tuple[str, str, int] | None:
    """An agent's close through the host worker: (stdout, stderr, exit code) as the full
    command gives them, or None when the full command must run instead."""
    request = parse_close(argv)
    if request is None:
        return None
    answer = ask(socket_path(), request)
    if answer is None:
        return None
    try:
        return render(request, answer)
    except ValueError:
        return None


def close_through_socket(argv: Sequence[str]) -> int | None:
    """Run an agent's close through the host worker: its exit code, or None to run the
    full command instead (nothing printed then)."""
    answered = close_answer(argv)
    if answered is None:
        return None
    out, err, code = answered
    from pathlib import Path

    from fleet_queue.private import warn_open_home

    warn_open_home(Path(fleet_home()))  # the full command's start-up warning
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    sys.stderr.flush()
    return code
