"""The ``fleet`` command.

``main`` first offers an agent's ``fleet card done|fail`` to the host worker's agent
socket (``fleet_queue.fast_close``: standard library only, no store opened); anything
else, or a close the socket does not take, runs the Typer app (``fleet_queue.cli.root``).
Typer, pydantic and the store are imported only on that second path.
"""

from __future__ import annotations

import sys
from typing import Any

_ROOT_NAMES = frozenset({"GROUPS", "ROOT_OPTIONS_WITH_VALUE", "build_app", "groups_for", "run"})


def __getattr__(name: str) -> Any:
    """``fleet_queue.cli.app`` (the whole app, for Typer's test runner) and the root's names."""
    if name == "app" or name in _ROOT_NAMES:
        from fleet_queue.cli import root

        return root.build_app() if name == "app" else getattr(root, name)
    raise AttributeError(name)


def main() -> None:
    """Entry point of the ``fleet`` script."""
    from fleet_queue.private import private_umask

    private_umask()  # docs/security.md: every file 0600, every directory 0700
    from fleet_queue.fast_close import close_through_socket

    code = close_through_socket(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from fleet_queue.cli.root import run

    run()
