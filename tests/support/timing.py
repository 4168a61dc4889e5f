"""How slow this machine is right now, measured once per session: the ``slowness`` factor.

End-to-end tests start Celery processes and give them leases and waits of a few
seconds. On a busy machine a worker's start, a tick and a delivery all take longer,
and a 4 s lease that is ample on an idle laptop runs out before the card is typed.
So those figures are written as "this many seconds on an idle machine" and scaled by
``slowness`` (≥ 1), the larger of two measurements:

- CPU contention: wall-clock over CPU time of a short busy loop in this process. On
  an idle machine the loop gets the whole core (ratio ≈ 1); beside two busy loops on
  two cores it gets about half (ratio ≈ 2).
- Start-up: the wall-clock of a fresh interpreter importing what a Celery worker of
  the fleet imports, against ``REFERENCE_STARTUP`` (its time on an idle machine of the
  kind the suite runs on, 2 cores). This catches a slow disk or a slow machine too.

``FLEET_TEST_SLOWNESS`` overrides the measurement (a CI runner known to be slow).
A test stays honest: a lease scaled by the factor still expires, a wait scaled by
it still fails when the thing never happens.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import time

REFERENCE_STARTUP = 0.6
"""Seconds for ``STARTUP_PROBE`` on a quiet 2-core machine (the fastest of many runs there
was 0.53 s; a typical run beside other work takes 0.7–1.9 s)."""

STARTUP_PROBE = "import celery.worker, kombu.transport.redis, fleet_queue.celery_app, workers.tasks"
MAX_SLOWNESS = 8.0
"""Beyond this the machine is not slow but stuck; waits stay bounded by the test timeouts."""

LOOP_SECONDS = 0.15


def contention(samples: int = 3) -> float:
    """Median wall/CPU ratio of a busy loop: how many runnable tasks share our core."""
    ratios = []
    for _ in range(samples):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while time.perf_counter() - wall0 < LOOP_SECONDS:
            sum(range(2000))
        cpu = time.process_time() - cpu0
        ratios.append((time.perf_counter() - wall0) / max(cpu, 1e-3))
    return statistics.median(ratios)


def startup_seconds() -> float:
    """Wall-clock of one interpreter importing the worker's modules (then exiting)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", STARTUP_PROBE], check=True, capture_output=True)
    return time.perf_counter() - started


@functools.cache
def measure() -> dict[str, float]:
    """The figures behind ``slowness()``, measured once per process."""
    forced = os.environ.get("FLEET_TEST_SLOWNESS")
    if forced:
        return {"slowness": max(1.0, float(forced)), "forced": 1.0}
    startup_seconds()  # the first run pays for cold caches, not for the load
    ratio, startup = contention(), startup_seconds()
    factor = min(MAX_SLOWNESS, max(1.0, ratio, startup / REFERENCE_STARTUP))
    return {"slowness": round(factor, 2), "contention": round(ratio, 2), "startup": startup}


def slowness() -> float:
    """The session's factor (≥ 1) by which leases and waits of e2e tests are scaled."""
    return measure()["slowness"]


def scaled(seconds: float) -> float:
    """``seconds`` on an idle machine, as long as it takes on this one now."""
    return seconds * slowness()
