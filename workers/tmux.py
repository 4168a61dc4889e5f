"""The fleet's private tmux server, and a fast control-mode client to drive it.

Every call runs ``tmux -L <socket> -f <our tmux.conf>`` with ``TMUX_TMPDIR``
set to the fleet's run directory, so the operator's ``~/.tmux.conf`` is never
read and the default tmux server (and its socket directory) is never touched.
tmux itself keeps the socket directory ``tmux-<uid>`` at mode 0700.

One-shot calls (``TmuxServer.run``) start a process each (~3 ms). The delivery
path instead keeps one ``tmux -C`` control-mode client per process and writes
commands to its stdin, which costs a pipe round trip, not a process start.
"""

from __future__ import annotations

import io
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fleet_queue.credentials import tmux_safe
from fleet_queue.errors import HostError
from fleet_queue.roster import Roster
from fleet_queue.settings import Settings

CONFIG_NAME = "tmux.conf"
MAX_SOCKET_PATH = 104
"""sun_path is 108 bytes on Linux and 104 on macOS; stay under both."""

_SCRUBBED_ENV = ("TMUX", "TMUX_PANE")


def config_path() -> Path:
    """Our shipped tmux.conf (package data)."""
    return Path(str(resources.files("workers") / "data" / CONFIG_NAME))


def socket_name_for(settings: Settings, roster: Roster | None) -> str:
    """An explicit ``FLEET_TMUX_SOCKET`` wins, then the roster's ``tmux.socket_name``."""
    if "tmux_socket" in settings.model_fields_set or roster is None:
        return settings.tmux_socket
    return roster.tmux.socket_name or settings.tmux_socket


def quote_arg(value: str) -> str:
    """Quote one argument for tmux's command parser (control mode reads command lines).

    Double quotes with every special character escaped: ``$`` would expand an
    environment variable, a raw newline would end the command line.
    """
    out = ['"']
    for ch in value:
        if ch in '\\"$':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def command_line(args: tuple[str, ...] | list[str]) -> str:
    return " ".join(quote_arg(arg) for arg in args)


@dataclass(frozen=True)
class TmuxServer:
    """Address of the fleet's tmux server: socket name, socket directory, config."""

    socket_name: str
    tmpdir: Path
    config: Path = field(default_factory=config_path)
    holder_session: str = "_holder"

    @classmethod
    def for_fleet(cls, settings: Settings, roster: Roster | None = None) -> TmuxServer:
        holder = roster.tmux.holder_session if roster is not None else "_holder"
        server = cls(
            socket_name=socket_name_for(settings, roster),
            tmpdir=settings.run_dir,
            holder_session=holder,
        )
        if len(str(server.socket_path)) > MAX_SOCKET_PATH:
            raise HostError(
                f"tmux socket path too long ({len(str(server.socket_path))} bytes):"
                f" {server.socket_path}; use a shorter FLEET_HOME"
            )
        return server

    @property
    def socket_dir(self) -> Path:
        return self.tmpdir / f"tmux-{os.getuid()}"

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / self.socket_name

    def argv(self, *args: str) -> list[str]:
        return ["tmux", "-L", self.socket_name, "-f", str(self.config), *args]

    def env(self) -> dict[str, str]:
        """The environment of every tmux process we start.

        No ``FLEET_*`` variable reaches the server's global environment (a pane
        gets exactly the ones its runtime adapter chooses), nor a store or broker
        secret (``credentials.tmux_safe``: ``PGPASSWORD``...), and ``TMUX`` is
        dropped so a fleet command run inside another tmux still targets ours.
        """
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _SCRUBBED_ENV
            and not key.startswith("FLEET_")
            and tmux_safe(key, value)  # no PGPASSWORD, no URL with a password
        }
        env["TMUX_TMPDIR"] = str(self.tmpdir)
        return env

    def prepare(self) -> None:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        if self.socket_dir.exists():
            mode = self.socket_dir.stat().st_mode & 0o777
            if mode & 0o077:
                raise HostError(
                    f"tmux socket directory {self.socket_dir} has unsafe mode {mode:o};"
                    " expected 700"
                )

    def run(self, *args: str, check: bool = True, timeout: float = 10.0) -> list[str]:
        """One tmux command as a process; its stdout lines. ``HostError`` when tmux fails."""
        proc = self.call(*args, timeout=timeout)
        if check and proc.returncode != 0:
            raise HostError(
                f"tmux {args[0]}: {first_line(proc.stderr) or f'exit {proc.returncode}'}"
            )
        return proc.stdout.splitlines()

    def call(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                self.argv(*args),
                env=self.env(),
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise HostError("tmux is not installed (not found on PATH)") from None
        except subprocess.TimeoutExpired:
            raise HostError(f"tmux {args[0]}: no answer within {timeout}s") from None

    def is_running(self) -> bool:
        if not self.socket_path.exists():
            return False
        return self.call("list-sessions", "-F", "#{session_name}").returncode == 0

    def ensure_started(self) -> bool:
        """Start the server with its holder session; True when it was started now."""
        self.prepare()
        if self.has_session(self.holder_session):
            return False
        self.run(
            "new-session",
            "-d",
            "-s",
            self.holder_session,
            "-x",
            "200",
            "-y",
            "50",
            "sleep",
            "2147483647",
        )
        return True

    def has_session(self, name: str) -> bool:
        if not self.socket_path.exists():
            return False
        return self.call("has-session", "-t", exact(name)).returncode == 0

    def session_names(self) -> list[str]:
        if not self.socket_path.exists():
            return []
        proc = self.call("list-sessions", "-F", "#{session_name}")
        return proc.stdout.splitlines() if proc.returncode == 0 else []

    def kill_server(self) -> None:
        if self.socket_path.exists():
            self.call("kill-server")
        wait_gone(self.socket_path)

    def control(self, timeout: float = 5.0) -> ControlClient:
        return ControlClient(self, timeout=timeout)


def exact(session: str) -> str:
    """A target naming exactly this session (no prefix or pattern matching)."""
    return f"={session}"


def pane_target(session: str) -> str:
    """The active pane of the session's current window (an agent has one pane)."""
    return f"={session}:"


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def wait_gone(path: Path, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    if path.exists() and not _socket_alive(path):
        path.unlink(missing_ok=True)


def _socket_alive(path: Path) -> bool:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        return False
    finally:
        sock.close()
    return True


class ControlClient:
    """A persistent ``tmux -C`` client: one command per line, answers in blocks.

    tmux answers each command with ``%begin``…``%end`` (or ``%error``) carrying
    the flag 1 for client commands; lines outside blocks are notifications and
    are dropped. A reader thread parses blocks into a queue; one lock keeps a
    command and its answer together. A dead client is restarted on next use.
    """

    def __init__(self, server: TmuxServer, timeout: float = 5.0) -> None:
        self.server = server
        self.timeout = timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._answers: queue.Queue[tuple[bool, list[str]] | None] = queue.Queue()

    def command(self, *args: str) -> list[str]:
        """Run one tmux command; its output lines. ``HostError`` with tmux's message."""
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None
            try:
                proc.stdin.write(command_line(args).encode("utf-8") + b"\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self._discard()
                raise HostError(f"tmux {args[0]}: control client died") from None
            try:
                answer = self._answers.get(timeout=self.timeout)
            except queue.Empty:
                self._discard()
                raise HostError(f"tmux {args[0]}: no answer within {self.timeout}s") from None
            if answer is None:
                self._discard()
                raise HostError(f"tmux {args[0]}: control client exited (server gone?)")
            ok, lines = answer
            if not ok:
                raise HostError(f"tmux {args[0]}: {first_line(chr(10).join(lines)) or 'error'}")
            return lines

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        with self._lock:
            self._discard()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._discard()
        if not self.server.has_session(self.server.holder_session):
            raise HostError(
                f"tmux server {self.server.socket_name!r} is not running (run `fleet start`)"
            )
        self._answers = queue.Queue()
        proc = subprocess.Popen(
            self.server.argv("-C", "attach-session", "-t", exact(self.server.holder_session)),
            env=self.server.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        self._proc = proc
        threading.Thread(
            target=_read_blocks, args=(proc, self._answers), daemon=True, name="tmux-control"
        ).start()
        self._proc = proc
        try:
            self._handshake(proc)
        except HostError:
            self._discard()
            raise
        return proc

    def _handshake(self, proc: subprocess.Popen[bytes]) -> None:
        """Quiet the client (no %output) and prove it answers; tmux may read this
        before the attach is complete ("no current client"), so retry briefly."""
        assert proc.stdin is not None
        deadline = time.monotonic() + self.timeout
        while True:
            proc.stdin.write(b"refresh-client -f no-output\n")
            proc.stdin.flush()
            try:
                answer = self._answers.get(timeout=self.timeout)
            except queue.Empty:
                raise HostError("tmux control client did not answer") from None
            if answer is None:
                raise HostError("tmux control client exited while attaching")
            if answer[0]:
                return
            if time.monotonic() > deadline:
                raise HostError(
                    f"tmux control client could not attach: {first_line(chr(10).join(answer[1]))}"
                )
            time.sleep(0.005)

    def _discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


READ_BUFFER = 1 << 16


def _read_blocks(
    proc: subprocess.Popen[bytes], answers: queue.Queue[tuple[bool, list[str]] | None]
) -> None:
    """Parse ``%begin``/``%end``/``%error`` blocks of client commands (flag 1)."""
    assert proc.stdout is not None
    # The pipe is unbuffered (bufsize=0 for the command side); reading its lines
    # straight from it costs one read(2) per byte. A capture-pane answer is KBs.
    stdout = io.BufferedReader(proc.stdout, buffer_size=READ_BUFFER)  # type: ignore[type-var]
    block: list[str] | None = None
    guard = ""
    client_cmd = False
    for raw in stdout:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        if block is None:
            if line.startswith("%begin "):
                parts = line.split(" ")
                guard = " ".join(parts[1:3])
                client_cmd = len(parts) > 3 and parts[3] == "1"
                block = []
            continue
        if line.startswith(("%end ", "%error ")):
            parts = line.split(" ")
            if " ".join(parts[1:3]) == guard:
                if client_cmd:
                    answers.put((line.startswith("%end "), block))
                block = None
                continue
        block.append(line)
    answers.put(None)
