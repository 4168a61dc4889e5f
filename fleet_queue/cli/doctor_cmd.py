"""``fleet doctor``: check every part the fleet needs on this host, and say what to do."""

from __future__ import annotations

import typer

from fleet_queue.cli.common import JsonFlag, emit, print_table, settings_of

MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}


def doctor(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check roster, store, broker, host worker, beat, pause, tmux, runtimes and the chat
    connector (read-only).

    Exit 0 when nothing failed (warnings allowed), 1 when a check failed.
    """
    from fleet_queue.doctor import fleet_checks
    from fleet_queue.doctor_connector import connector_checks
    from workers.host_checks import connector_unit_active, host_checks

    settings = settings_of(ctx)
    checks = fleet_checks(settings)
    store_ok = any(c.name == "store" and c.level == "ok" for c in checks)
    checks += connector_checks(settings, store_ok, connector_unit_active) + host_checks(settings)
    failed = [c for c in checks if c.level == "fail"]
    data = {
        "ok": not failed,
        "host": settings.host,
        "tenant": settings.tenant,
        "checks": [c.to_dict() for c in checks],
    }
    rows = [
        {"check": c.name, "": MARK[c.level], "detail": c.detail, "what to do": c.hint}
        for c in checks
    ]
    emit(data, as_json, lambda: print_table(rows, ["check", "", "detail", "what to do"]))
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
