"""``celery flower`` with its Prometheus ``/metrics`` behind the same login as every page.

Flower 2.x serves ``/metrics`` (worker and task names, counts, runtimes) without asking
for the basic-auth login it asks for everywhere else, and has no option to turn it off.
This entry point marks that one handler as authenticated, the way Flower marks its own
pages, then runs the ``celery`` command line unchanged: with ``FLEET_FLOWER_AUTH`` set a
scrape needs the login; without it Flower listens on loopback only (``fleet flower``
refuses any other address). ``/healthcheck`` stays open: it answers ``OK`` and nothing more.
"""

from __future__ import annotations

import sys


def guard_metrics() -> None:
    from flower.views import monitor
    from tornado import web

    monitor.Metrics.get = web.authenticated(monitor.Metrics.get)


def main() -> None:
    guard_metrics()
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", *sys.argv[1:]]
    celery_main()


if __name__ == "__main__":
    main()
