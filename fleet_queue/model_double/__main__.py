"""`python -m fleet_queue.model_double --port 0 [--script FILE] [--log] [--dump DIR]`.

Prints the URL on the first line of stdout, serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from fleet_queue.model_double.script import load_script
from fleet_queue.model_double.server import ModelDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet_queue.model_double")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script", type=Path, help="JSON list of replies for the main turns")
    parser.add_argument("--log", action="store_true", help="one line per request on stderr")
    parser.add_argument("--dump", type=Path, help="write each request as DIR/NNNNN.json")
    args = parser.parse_args(argv)
    try:
        replies = load_script(args.script) if args.script else []
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(f"model double: bad --script: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    double = ModelDouble(args.host, args.port, log=args.log, dump=args.dump)
    try:
        double.start()
    except OSError as exc:
        print(f"model double: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    with double:
        double.script(*replies)
        print(double.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
