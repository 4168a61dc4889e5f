"""The host worker's agent socket: an agent closes its own card, and nothing else.

``fleet card done|fail`` run inside an agent's pane sends one JSON line here
(``fleet_queue.fast_close``) instead of opening the store: the worker already holds it
open, with the nudge hook, so the close costs the agent a process start and a socket
round trip, and the tick is nudged as from any other close.

It is also the agent's narrow credential (docs/security.md, "The agent socket"). The
socket lives in ``run/agent-sockets/`` (0700, the operator's user only). Who is asking is
read from the kernel, not from the request: the peer's pid (``SO_PEERCRED``), walked up
its parents (``/proc/<pid>/stat``) to the pane of one of this host's agents (tmux's
``#{pane_pid}``). A close of a card that agent does not hold is refused in one line; a
caller in no agent's pane (the operator's shell, a script) is answered ``fallback`` and
runs the full command, which needs the operator's ``fleet.env``.

Request: ``{"op": "done"|"fail", "card": ID, "token": N, "result"|"reason": TEXT}``.
Answer: ``{"ok": true, "card": {...}}`` or ``{"ok": false, "error": LINE, "code": N}`` with
the exit code of the full command's error, or ``{"ok": false, "fallback": true, ...}``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_queue.errors import ConflictError, FleetError, StaleTokenError, UsageError
from fleet_queue.layout import MAX_SOCKET_PATH, agent_socket_path
from fleet_queue.private import ensure_private_dir
from workers.tmux import TmuxServer

if TYPE_CHECKING:
    from collections.abc import Callable

    from fleet_queue.cards import Card
    from fleet_queue.context import FleetContext

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0
"""Seconds a connection may take to send its line: a stuck caller holds only its thread."""
MAX_PARENTS = 64
"""How far up a caller's parents the pane is looked for (a shell in a shell in a TUI...)."""
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Refusal:
    """What a caller outside every agent's pane is told: run the full command."""

    reason: str

    def answer(self) -> dict[str, Any]:
        return {"ok": False, "fallback": True, "error": self.reason, "code": UsageError.exit_code}


# --- who is calling -------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid``, or None when it is gone.

    The start time tells a pane process from a later one that reuses its pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    _, sep, rest = text.rpartition(")")  # the command name may hold spaces and parentheses
    fields = rest.split()
    if not sep or len(fields) < 20:
        return None
    return int(fields[1]), int(fields[19])


def lineage(pid: int) -> list[tuple[int, int]]:
    """``pid`` and its parents, each with its start time, up to (not including) init."""
    chain: list[tuple[int, int]] = []
    while pid > 1 and len(chain) < MAX_PARENTS:
        stat = proc_stat(pid)
        if stat is None:
            break
        chain.append((pid, stat[1]))
        pid = stat[0]
    return chain


class PaneMap:
    """Which of this host's agents (if any) a process runs under: its pane's pid, cached.

    The map is refreshed from tmux (one ``list-panes``, a few ms) only when a caller is
    found in no cached pane, so an agent's close costs a few ``/proc`` reads.
    """

    def __init__(self, ctx: FleetContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._panes: dict[tuple[int, int], str] = {}  # (pane pid, start time) -> agent

    def agent_of(self, pid: int) -> str | None:
        chain = lineage(pid)
        with self._lock:
            found = self._match(chain)
            if found is None and chain:
                self._panes = self._list_panes()
                found = self._match(chain)
            return found

    def _match(self, chain: list[tuple[int, int]]) -> str | None:
        return next((self._panes[link] for link in chain if link in self._panes), None)

    def _list_panes(self) -> dict[tuple[int, int], str]:
        settings, roster = self.ctx.settings, self.ctx.roster
        agents = {agent.name for agent in roster.agents_on(settings.host, settings.tenant)}
        server = TmuxServer.for_fleet(settings, roster)
        if not agents or not server.socket_path.exists():
            return {}
        proc = server.call("list-panes", "-a", "-F", "#{session_name}\t#{pane_pid}")
        panes: dict[tuple[int, int], str] = {}
        for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
            session, _, pid = line.partition("\t")
            stat = proc_stat(int(pid)) if session in agents and pid.isdigit() else None
            if stat is not None:
                panes[(int(pid), stat[1])] = session
        return panes


def peer_pid(conn: socket.socket) -> int:
    """The connecting process's pid as the kernel saw it (0 when in another pid namespace)."""
    pid, _uid, _gid = _PEERCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return int(pid)


# --- what it asks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseRequest:
    op: str
    card: str
    token: int
    text: str | None  # ``result`` of done, ``reason`` of fail

    @classmethod
    def parse(cls, line: bytes) -> CloseRequest:
        """The request of one line; ``UsageError`` (one line) for anything malformed."""
        try:
            data = json.loads(line)
        except ValueError:
            raise UsageError("agent socket: the request is not one JSON line") from None
        if not isinstance(data, dict) or data.get("op") not in ("done", "fail"):
            raise UsageError("agent socket: op must be 'done' or 'fail'")
        op, card, token = data["op"], data.get("card"), data.get("token")
        text = data.get("result" if op == "done" else "reason")
        if not isinstance(card, str) or not isinstance(token, int) or isinstance(token, bool):
            raise UsageError("agent socket: card must be a string and token an integer")
        if not (text is None or isinstance(text, str)) or (op == "fail" and text is None):
            raise UsageError(f"agent socket: {'reason' if op == 'fail' else 'result'} must be text")
        return cls(op, card, token, text)


def close_card(ctx: FleetContext, agent: str, request: CloseRequest) -> Card:
    """The store's own ``complete``/``fail`` (same events, errors and nudge as the full
    command), for a card that ``agent`` holds or last held: the store's fenced write checks
    the owner, so a card reclaimed and claimed by another agent is refused even under that
    agent's token, and a card never ``agent``'s is refused as not its own."""
    store = ctx.store
    try:  # the fenced write checks the owner: the card is read again only on a refusal
        if request.op == "done":
            return store.complete(request.card, request.token, request.text, owner=agent)
        assert request.text is not None
        return store.fail(request.card, request.token, request.text, owner=agent)
    except StaleTokenError:
        card = store.get(request.card)
        if card.lease_owner == agent:
            raise
        action = "complete" if request.op == "done" else "fail"
        raise ConflictError(
            f"card {request.card!r} is not held by agent {agent!r}; an agent may {action}"
            " only its own cards"
        ) from None


# --- the server -----------------------------------------------------------------------------


class AgentSocketServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One thread per connection (each does one store write); daemon threads."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self, path: str, ctx: FleetContext, identify: Callable[[int], str | None] | None = None
    ) -> None:
        self.ctx = ctx
        self.identify = identify or PaneMap(ctx).agent_of
        self.max_request = 4 * ctx.settings.max_card_bytes + 64 * 1024
        super().__init__(path, _Handler)
        os.chmod(path, 0o600)
        self.inode = os.stat(path).st_ino

    def answer(self, conn: socket.socket, line: bytes) -> dict[str, Any]:
        """The answer to one request line from the process at the other end of ``conn``."""
        started = time.perf_counter()
        if len(line) >= self.max_request and not line.endswith(b"\n"):
            return Refusal("request too long for the agent socket").answer()
        pid = 0
        try:
            pid = peer_pid(conn)
            agent = self.identify(pid) if pid > 0 else None
        except Exception:  # tmux or the roster failed us: the caller still has the full path
            log.exception("agent socket: could not tell whose pane pid %s is in", pid)
            agent = None
        if agent is None:
            log.info("agent socket: pid %s is in no agent's pane on this host: fallback", pid)
            return Refusal("not from an agent's pane on this host").answer()
        try:
            request = CloseRequest.parse(line)
            card = close_card(self.ctx, agent, request)
        except FleetError as exc:
            log.info("agent socket: %s refused: %s", agent, exc.message)
            return {"ok": False, "error": exc.message, "code": exc.exit_code}
        except Exception:  # the full command reports it as it always has
            log.exception("agent socket: %s: no answer; the caller runs the full command", agent)
            return Refusal("the host worker could not close the card").answer()
        log.info(
            "agent socket: %s %s %s token %s in %.1f ms", agent, request.op, card.id,
            request.token, (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return {"ok": True, "card": card.to_dict()}

    def stop(self) -> None:
        """Stop serving and remove the socket file, if it is still ours."""
        self.shutdown()
        self.server_close()
        with contextlib.suppress(OSError):
            if os.stat(self.server_address).st_ino == self.inode:  # type: ignore[arg-type]
                os.unlink(self.server_address)  # type: ignore[arg-type]


class _Handler(socketserver.StreamRequestHandler):
    server: AgentSocketServer

    def handle(self) -> None:
        self.connection.settimeout(READ_TIMEOUT)
        try:
            line = self.rfile.readline(self.server.max_request)
        except OSError:
            return
        answer = self.server.answer(self.connection, line)
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(answer, default=str).encode("utf-8") + b"\n")


def socket_path_for(ctx: FleetContext) -> Path:
    return Path(agent_socket_path(str(ctx.settings.home), ctx.settings.tenant))


def serving(path: Path) -> bool:
    """Whether a live process answers on ``path`` (another worker of this tenant and home)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def start_agent_socket(
    ctx: FleetContext, identify: Callable[[int], str | None] | None = None
) -> AgentSocketServer | None:
    """Serve this worker's agent socket from a daemon thread; None when it cannot (then
    every agent's close takes the full path, as before: slower, not broken)."""
    path = socket_path_for(ctx)
    if len(str(path)) > MAX_SOCKET_PATH:
        log.warning(
            "agent socket: path too long (%d bytes): %s; agents close cards the slow way"
            " (use a shorter FLEET_HOME)", len(str(path)), path,
        )  # fmt: skip
        return None
    try:
        ensure_private_dir(path.parent)
        if path.exists() or path.is_symlink():
            if serving(path):
                log.warning("agent socket: %s is served by another worker; not serving", path)
                return None
            path.unlink()  # left by a worker that was killed
        server = AgentSocketServer(str(path), ctx, identify)
    except OSError as exc:
        log.warning("agent socket: cannot serve %s: %s", path, exc)
        return None
    threading.Thread(target=server.serve_forever, name="agent-socket", daemon=True).start()
    atexit.register(server.stop)
    log.info("agent socket: serving %s", path)
    return server
