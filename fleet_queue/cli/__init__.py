"""The ``fleet`` command: thin — parse, call the Python API, print.

Each command group lives in its own module and registers itself on the one
Typer app; any ``FleetError`` becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from fleet_queue import catalog
from fleet_queue.cli import (
    backlog_cmd,
    board_cmd,
    config_cmd,
    dispatch_cmd,
    doctor_cmd,
    host_cmd,
    roster_cmd,
    systemd_cmd,
)
from fleet_queue.cli.common import CliState
from fleet_queue.errors import FleetError, StoreUnavailableError
from fleet_queue.private import private_umask, warn_open_home
from fleet_queue.settings import DEFAULT_HOME

app = typer.Typer(
    name="fleet",
    help="Run a fleet of always-on AI agents in tmux and feed them cards through Celery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="FLEET_HOME", help="State directory [env: FLEET_HOME]."),
    ] = None,
) -> None:
    ctx.obj = CliState(home=home)
    warn_open_home((home or DEFAULT_HOME).expanduser())
    catalog.use_home(home)  # the operator's own presets, profiles and roles


_GROUPS = (config_cmd, roster_cmd, backlog_cmd, host_cmd, dispatch_cmd, systemd_cmd, board_cmd)
for _module in (*_GROUPS, doctor_cmd):
    _module.register(app)


def main() -> None:
    """Entry point of the ``fleet`` script: Click handles usage errors, we handle ours."""
    private_umask()  # docs/security.md: every file 0600, every directory 0700
    try:
        app()
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
