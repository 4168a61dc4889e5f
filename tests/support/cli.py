"""Run ``fleet`` in-process through its real entry point, exit codes and stderr included.

``CliRunner.invoke(app)`` bypasses ``fleet_queue.cli.main``, which is where a
``FleetError`` becomes one line on stderr and its exit code; tests of that
contract go through here instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from typer.testing import CliRunner

from fleet_queue.cli import main


@dataclass(frozen=True)
class FleetRun:
    exit_code: int
    stdout: str
    stderr: str


def run_fleet(*args: str, input: str | None = None) -> FleetRun:
    """``fleet ARGS`` with ``input`` as stdin; returns what the operator would see."""
    runner = CliRunner()
    saved = sys.argv
    with runner.isolation(input=input) as streams:
        sys.argv = ["fleet", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = saved
        return FleetRun(code, streams[0].getvalue().decode(), streams[1].getvalue().decode())
