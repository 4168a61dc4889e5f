"""The ``fleet`` Typer app: thin — parse, call the Python API, print.

Each command group lives in its own module and registers itself on the Typer
app; any ``FleetError`` becomes one line on stderr and its exit code. ``run``
imports only the group the command line names (``fleet card done`` loads the
backlog group, not tmux, Celery or the catalog); help, and a name it does not
know, load them all. An agent's own close usually never gets here: ``fleet_queue.cli.main``
hands it to the host worker's socket first (``fleet_queue.fast_close``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from fleet_queue.cli.common import CliState
from fleet_queue.errors import FleetError, StoreUnavailableError
from fleet_queue.private import warn_open_home
from fleet_queue.settings import DEFAULT_HOME

GROUPS: dict[str, tuple[str, ...]] = {
    "config_cmd": ("config",),
    "roster_cmd": ("init", "roster", "presets", "profiles", "roles"),
    "backlog_cmd": ("backlog", "card"),
    "db_cmd": ("db",),
    "host_cmd": ("start", "stop", "restart", "verify", "ps", "agent"),
    "up_cmd": ("up", "down", "broker"),
    "dispatch_cmd": ("worker", "beat", "flower", "demo", "pause", "resume", "tick"),
    "systemd_cmd": ("install-systemd",),
    "board_cmd": ("board",),
    "connector_cmd": ("connector",),
    "doctor_cmd": ("doctor",),
    "spend_cmd": ("spend",),
}
"""Each group module and the top-level commands it registers, in help order
(``tests/unit/test_cli_groups.py`` checks this against the modules)."""

ROOT_OPTIONS_WITH_VALUE = frozenset({"--home"})


def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="FLEET_HOME", help="State directory [env: FLEET_HOME]."),
    ] = None,
) -> None:
    ctx.obj = CliState(home=home)
    warn_open_home((home or DEFAULT_HOME).expanduser())
    # The operator's own presets, profiles and roles. The catalog reads FLEET_HOME
    # itself, so it is loaded (with YAML and the roster model) only to be told of a
    # --home that differs, or to forget the last one when it is loaded already.
    if "fleet_queue.catalog" in sys.modules or (
        home is not None and str(home) != os.environ.get("FLEET_HOME")
    ):
        from fleet_queue import catalog

        catalog.use_home(home)


def build_app(modules: Sequence[str] = tuple(GROUPS)) -> typer.Typer:
    """The ``fleet`` app with these command groups registered."""
    cli = typer.Typer(
        name="fleet",
        help="Run a fleet of always-on AI agents in tmux and feed them cards through Celery.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    cli.callback()(_root)
    for name in modules:
        importlib.import_module(f"fleet_queue.cli.{name}").register(cli)
    return cli


def groups_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The group that registers the command ``argv`` names; all of them when it names none."""
    args = iter(argv)
    for arg in args:
        if arg in ROOT_OPTIONS_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return next(((m,) for m, names in GROUPS.items() if arg in names), tuple(GROUPS))
    return tuple(GROUPS)


def run() -> None:
    """The full command: Click handles usage errors, we handle ours."""
    try:
        build_app(groups_for(sys.argv[1:]))()
    except FleetError as exc:
        typer.echo(f"fleet: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        error = _store_unavailable(exc)
        if error is None:
            raise
        typer.echo(f"fleet: {error.message}", err=True)
        sys.exit(error.exit_code)


def _store_unavailable(exc: Exception) -> StoreUnavailableError | None:
    """A database that is down or refuses us: one line, not a traceback.

    Looked up in ``sys.modules`` so that commands which never open the store do not pay
    for importing SQLAlchemy just to name its exception.
    """
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.OperationalError):
        return None
    reason = (str(exc.orig or exc).strip().splitlines() or ["unknown error"])[0]
    return StoreUnavailableError(f"the card store is not reachable: {reason}")
