"""Pane programs of every kind delivery meets, each writing exactly what it received.

Line readers write one record per line they read; raw-mode programs one record per
submitted message (newlines kept). ``Program.records`` reads them back as text.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.stub_agent import log_path, received_messages

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Program:
    name: str
    command: str
    """With ``{out}`` for the file the program writes what it received to."""
    canonical: bool
    hex_records: bool = True
    env: tuple[tuple[str, str], ...] = ()

    def agent(self, out: Path) -> dict[str, Any]:
        if self.name == "stub":
            return {"name": "stub", "runtime": "stub", "class": "coder"}
        spec: dict[str, Any] = {
            "name": self.name,
            "runtime": self.name,
            "class": "coder",
            "command": self.command.format(out=out),
        }
        if self.env:
            spec["env"] = dict(self.env)
        return spec

    def records(self, out: Path, run_dir: Path) -> list[str]:
        """Everything received so far, one text per line read or message submitted."""
        if self.name == "stub":
            return received_messages(log_path(run_dir, self.name))
        if not out.exists():
            return []
        lines = out.read_bytes().split(b"\n")[:-1]
        if self.hex_records:
            return [bytes.fromhex(line.decode("ascii")).decode("utf-8") for line in lines]
        return [line.decode("utf-8") for line in lines]

    def expected(self, message: str) -> list[str]:
        """The records one delivered message makes."""
        return message.split("\n") if self.canonical else [message]


PY = sys.executable
LINE = Program("line", f"bash {HERE / 'line_reader.sh'} {{out}}", True, hex_records=False)
INPUT = Program("pyinput", f"{PY} {HERE / 'input_reader.py'} {{out}}", True)
NOECHO = Program("noecho", LINE.command, True, hex_records=False, env=(("NOECHO", "1"),))
SLEEPER = Program("sleeper", LINE.command, True, hex_records=False, env=(("SLEEP", "4"),))
RAW = Program("raw", f"{PY} {HERE / 'raw_reader.py'} {{out}}", False)
LAGGED = Program("lagged", RAW.command, False, env=(("LAG", "1.5"),))
PTK = Program("ptk", f"{PY} {HERE / 'ptk_prompt.py'} {{out}}", False)
HOLDER = Program("holder", f"{PY} {HERE / 'poll_then_read.py'} {{out}}", True, env=(("HOLD", "3"),))
STUB = Program("stub", "", False)
