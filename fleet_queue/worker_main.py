"""The host worker's entry point: Celery's own worker, without Celery's command line.

``celery worker`` first imports the whole ``celery`` command line: every subcommand,
click-repl with prompt_toolkit and pygments (for ``celery shell`` and ``amqp``), and every
installed ``celery.commands`` plugin, here Flower with tornado, prometheus_client and
redis's asyncio client. None of it runs in a worker, and it is about 15 MiB of the RSS
of each host worker (issue 19: measured in docs/benchmarks.md, "RSS, third round").
This builds the same ``app.Worker`` that the ``worker`` subcommand builds, from the
options ``fleet_queue.processes.worker_command`` gives, so the worker, its signals, its
logs and its exit status are Celery's own.
"""

from __future__ import annotations

import argparse
import sys


def parse(argv: list[str]) -> argparse.Namespace:
    """The ``celery worker`` options a host worker uses, spelled as ``celery`` spells them."""
    parser = argparse.ArgumentParser(prog="python -m fleet_queue.worker_main")
    parser.add_argument("-Q", "--queues", required=True, help="comma-separated queues")
    parser.add_argument("-n", "--hostname", required=True)
    parser.add_argument("-P", "--pool", default="threads")
    parser.add_argument("-c", "--concurrency", type=int, default=4)
    parser.add_argument("-l", "--loglevel", default="INFO")
    parser.add_argument("-E", "--task-events", action="store_true")
    parser.add_argument("--without-gossip", action="store_true")
    parser.add_argument("--without-mingle", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    from celery import concurrency
    from celery.utils.log import mlevel
    from celery.utils.nodenames import default_nodename, host_format

    from fleet_queue.celery_app import app

    pool = concurrency.get_implementation(args.pool)
    worker = app.Worker(  # what celery.bin.worker.worker passes, less the unused options
        hostname=host_format(default_nodename(args.hostname)),
        pool_cls=pool,
        loglevel=mlevel(args.loglevel.upper()),
        concurrency=args.concurrency,
        queues=[q for q in args.queues.split(",") if q],
        task_events=args.task_events,
        without_gossip=args.without_gossip,
        without_mingle=args.without_mingle,
    )
    worker.start()
    sys.exit(worker.exitcode)


if __name__ == "__main__":
    main()
