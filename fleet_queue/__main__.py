"""``python -m fleet_queue`` is the ``fleet`` command (agents use it when no script is on PATH)."""

from fleet_queue.cli import main

main()
