"""``fleet install-systemd``: write (and optionally enable) this host's user units.

Exit codes: 0 when the units are written (also when ``--enable`` had to be
skipped because there is no user systemd manager: the reason and what to run
are printed, and ``enable_skipped`` says why in ``--json``); 2 on bad input (an
invalid roster, ``--enable`` with a ``--unit-dir`` systemd does not read); 1
when tmux is missing or ``systemctl --user enable`` fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleet_queue.cli.common import JsonFlag, emit, settings_of
from fleet_queue.roster import load_roster

if TYPE_CHECKING:
    from workers.systemd_units import InstallResult


def install_systemd(
    ctx: typer.Context,
    enable: Annotated[
        bool, typer.Option("--enable", help="Also enable the units (start at boot).")
    ] = False,
    unit_dir: Annotated[
        Path | None,
        typer.Option("--unit-dir", help="Write here instead of ~/.config/systemd/user."),
    ] = None,
    beat: Annotated[
        bool,
        typer.Option("--beat/--no-beat", help="Enable fleet-beat here (one host per fleet)."),
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Write systemd user units for this host's tmux server, agents, worker and beat."""
    from workers.systemd_units import install_units

    settings = settings_of(ctx)
    roster = load_roster(settings.effective_roster_path)
    result = install_units(settings, roster, unit_dir=unit_dir, enable=enable, beat=beat)
    emit(result.as_dict(), as_json, lambda: _render(result, enable))


def _render(result: InstallResult, enable: bool) -> None:
    for path in result.written:
        typer.echo(f"wrote {path}")
    if result.enabled:
        typer.echo(f"enabled: {' '.join(result.enabled)}")
    if result.enable_skipped:
        typer.echo(f"fleet: not enabled: {result.enable_skipped}", err=True)
    if not result.enabled:
        typer.echo(
            "next: systemctl --user daemon-reload && systemctl --user enable --now "
            + " ".join(result.to_enable),
            err=enable,
        )
    typer.echo(result.hint)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("install-systemd")(install_systemd)
