"""What a fleet left running: every process and unix socket that names a directory.

A fleet's processes all carry its ``FLEET_HOME`` (the worker's and beat's environment,
redis-server's command line, the tmux server's ``TMUX_TMPDIR``, the panes it runs), so
a scan of ``/proc`` for that path finds them whatever they are called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    command: str


def processes_naming(path: Path) -> list[Proc]:
    """Live processes (not this one) whose environment or command line contains ``path``."""
    needle = str(path).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if state == "Z":
            continue  # a zombie holds nothing; its parent has yet to reap it
        if needle in cmdline or needle in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(Proc(int(entry.name), command))
    return found


def unix_sockets_naming(path: Path) -> list[str]:
    """Bound unix sockets (``/proc/net/unix``) under ``path``."""
    prefix = str(path)
    lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    return [parts[-1] for parts in (ln.split() for ln in lines) if parts[-1].startswith(prefix)]
