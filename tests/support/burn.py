"""CPU-burning processes beside the suite: the "loaded machine" the e2e tests must pass on.

``FLEET_TEST_BURN=N`` (read by ``tests/conftest.py``) starts N busy loops for the
session. Each is a child in its own process group that also watches its parent: if
pytest dies without cleaning up, the loop sees its parent change and exits, so a
crashed run leaves nothing burning.

    FLEET_TEST_BURN=2 .venv/bin/pytest -m e2e
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

BURN_LOOP = """
import os, sys, time
parent = int(sys.argv[1])
while os.getppid() == parent:
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        pass
"""


def burn_count(value: str | None) -> int:
    """``FLEET_TEST_BURN`` as a count; bad input is one clear error, not a silent 0."""
    if not value:
        return 0
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"FLEET_TEST_BURN must be a whole number, not {value!r}") from None
    if not 0 <= count <= 64:
        raise ValueError(f"FLEET_TEST_BURN must be between 0 and 64, not {count}")
    return count


@contextmanager
def burning(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` busy loops for the duration of the block; all are gone after it."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", BURN_LOOP, str(os.getpid())],
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                )
            )
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=10)
