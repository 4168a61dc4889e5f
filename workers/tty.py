"""What a pane's terminal is doing, read from the kernel: line discipline and its reader.

Delivery types into a pseudo-terminal; what arrives depends on how the program
reads it. The slave side's termios says whether the program reads lines
(``ICANON``: the kernel edits the line, at most ``MAX_CANON - 1`` bytes before
the newline, the rest of a longer line is dropped) or bytes (raw: a TUI that
edits its own input line). ``/proc`` says whether anyone in the terminal's
foreground process group is waiting for input right now: a thread blocked in
``read(2)`` on this terminal, or in ``poll``/``select``/``epoll`` (how every TUI
waits for keys). A foreground group that only sleeps, computes or is stopped is
not reading, and text typed now would sit in the terminal until whatever reads
it next. Linux only; elsewhere (or when ``/proc`` hides it) the answer is
"unknown" and delivery falls back to the heartbeat and pane-output checks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import struct
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_CANON = 4096
"""Linux's canonical-mode line buffer (``N_TTY_BUF_SIZE``): a line holds at most
4095 bytes, the last byte is kept for the newline; the excess is discarded."""
MAX_CANON_LINE = MAX_CANON - 1
"""Bytes of one line, newline included, that a canonical-mode reader receives whole."""

_READS = {"x86_64": {0, 17, 19, 295}, "aarch64": {63, 65, 67, 69}}
"""read, pread64, readv, preadv: the first argument is the file descriptor."""
_WAITS = {
    "x86_64": {7, 23, 232, 270, 271, 281, 441},
    "aarch64": {22, 72, 73, 441},
}
"""poll, select, epoll_wait, pselect6, ppoll, epoll_pwait(2): how a TUI waits for keys."""
_READER_WCHANS = frozenset(
    {"wait_woken", "n_tty_read", "do_select", "do_sys_poll", "ep_poll", "do_epoll_wait"}
)
"""Kernel wait points of a blocked tty read or a poll, for when ``syscall`` is unreadable."""
SAMPLES = 3
SAMPLE_GAP = 0.005
"""A TUI redrawing is briefly running; three looks 5 ms apart tell that from busy."""


@dataclass(frozen=True)
class TtyState:
    """One look at a pane's terminal."""

    path: str
    canonical: bool
    echo: bool
    reading: bool | None
    """True: a foreground process waits for input; None: cannot tell (no /proc)."""
    why: str
    """What the foreground process is doing, for the refusal message."""
    foreground: tuple[int, ...] = ()


def open_tty(path: str) -> int:
    """The pane's terminal (the pty slave), without making it ours or blocking on it."""
    return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)


@contextlib.contextmanager
def opened(path: str) -> Iterator[int]:
    """The terminal open for a look; a termios failure is an ``OSError`` like the open's."""
    fd = open_tty(path)
    try:
        yield fd
    except termios.error as exc:
        raise OSError(f"{path}: {exc}") from None
    finally:
        os.close(fd)


def modes(fd: int) -> tuple[bool, bool]:
    """(canonical, echo) from the terminal's local flags."""
    lflag = termios.tcgetattr(fd)[3]
    return bool(lflag & termios.ICANON), bool(lflag & termios.ECHO)


def queued_input(fd: int) -> int:
    """Bytes typed but not yet read (in canonical mode: of complete lines)."""
    raw = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
    count: int = struct.unpack("i", raw)[0]
    return count


def flush_input(path: str, settle: float = 0.05, rounds: int = 4) -> None:
    """Discard whatever was typed and not read, now and for a short while after.

    tmux writes a paste to the terminal as the terminal takes it: when the reader
    stopped, part of the text may still be in tmux's buffer and arrive after a
    first flush; flushing again until nothing is queued catches that tail.
    """
    try:
        with opened(path) as fd:
            for _ in range(rounds):
                termios.tcflush(fd, termios.TCIFLUSH)
                time.sleep(settle)
                if queued_input(fd) == 0:
                    termios.tcflush(fd, termios.TCIFLUSH)
                    return
    except OSError:
        return


def inspect(path: str, pane_pid: int) -> TtyState:
    """The terminal's modes and whether its foreground group is waiting for input."""
    with opened(path) as fd:
        canonical, echo = modes(fd)
    reading: bool | None = None
    why = "unknown"
    members: tuple[int, ...] = ()
    for attempt in range(SAMPLES):
        members = foreground(pane_pid)
        reading, why = _reading(path, members)
        if reading is not False:
            break
        if attempt + 1 < SAMPLES:
            time.sleep(SAMPLE_GAP)
    return TtyState(path, canonical, echo, reading, why, members)


def foreground(pane_pid: int) -> tuple[int, ...]:
    """The pane's foreground process group: the pane process and its descendants in it."""
    stat = _stat(pane_pid)
    if stat is None:
        return ()
    tpgid = int(stat[5])
    if tpgid <= 0:
        return ()
    members = []
    for pid in _descendants(pane_pid):
        fields = _stat(pid)
        if fields is not None and int(fields[2]) == tpgid:
            members.append(pid)
    return tuple(members)


def bytes_read(pids: tuple[int, ...]) -> dict[int, int]:
    """Each process's ``rchar`` (bytes returned by its reads, all files): proof of reading."""
    out: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("rchar:"):
                    out[pid] = int(line.split()[1])
    return out


def read_since(before: dict[int, int], pids: tuple[int, ...]) -> int:
    """Bytes the processes seen before have read since (new processes do not count)."""
    after = bytes_read(tuple(pid for pid in pids if pid in before))
    return sum(after[pid] - before[pid] for pid in after)


def _reading(path: str, members: tuple[int, ...]) -> tuple[bool | None, str]:
    if not members:
        return False, "no foreground process"
    informed = False
    doing = []
    for pid in members:
        for tid in _threads(pid):
            base = f"/proc/{pid}/task/{tid}"
            fields = _stat_path(f"{base}/stat")
            if fields is None:
                continue
            if fields[0] in "Tt":
                informed = True
                doing.append(f"{pid} {_comm(pid)}: stopped")
                break
            verdict = _thread_waits(pid, base, path)
            if verdict:
                return True, f"{pid} {_comm(pid)} waits for input"
            informed = informed or verdict is not None
            if tid == pid:
                doing.append(f"{pid} {_comm(pid)}: {_activity(fields[0], base)}")
    if not informed:
        return None, "unknown"
    return False, "; ".join(doing) or "no foreground process"


def _thread_waits(pid: int, base: str, path: str) -> bool | None:
    """True: blocked reading this terminal or polling; None: /proc does not say."""
    call = _read(f"{base}/syscall").split()
    machine = platform.machine()
    if call and call[0] == "running":
        return False
    if call and call[0].isdigit() and machine in _READS:
        number = int(call[0])
        if number in _READS[machine]:
            return len(call) > 1 and _fd_is(pid, int(call[1], 16), path)
        return number in _WAITS[machine]
    wchan = _read(f"{base}/wchan")
    if not wchan or wchan == "0":
        return None
    return wchan in _READER_WCHANS


def _activity(state: str, base: str) -> str:
    if state == "R":
        return "running"
    wchan = _read(f"{base}/wchan")
    return wchan if wchan and wchan != "0" else f"state {state}"


def _fd_is(pid: int, fd: int, path: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}") == path
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    out = [pid]
    index = 0
    while index < len(out):
        current = out[index]
        index += 1
        for tid in _threads(current):
            text = _read(f"/proc/{current}/task/{tid}/children")
            out.extend(int(child) for child in text.split() if child.isdigit())
    return out


def _threads(pid: int) -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if t.isdigit())
    except OSError:
        return []


def _stat(pid: int) -> list[str] | None:
    return _stat_path(f"/proc/{pid}/stat")


def _stat_path(path: str) -> list[str] | None:
    """The fields after the command name: state, ppid, pgrp, session, tty_nr, tpgid, …"""
    text = _read(path)
    _, sep, rest = text.rpartition(")")
    return rest.split() if sep else None


def _comm(pid: int) -> str:
    return _read(f"/proc/{pid}/comm") or "?"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""
