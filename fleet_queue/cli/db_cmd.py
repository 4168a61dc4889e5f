"""``fleet db upgrade|current``: the card store's schema (Alembic migrations)."""

from __future__ import annotations

import typer

from fleet_queue.cli.common import JsonFlag, emit, get_console, settings_of

db_app = typer.Typer(help="The card store's schema (Alembic migrations).")


def db_upgrade(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Apply the store's migrations up to head."""
    from fleet_queue.settings import mask_url
    from fleet_queue.store import migrate
    from fleet_queue.store.engine import make_engine

    settings = settings_of(ctx)
    engine = make_engine(settings.effective_database_url)
    try:
        before = migrate.current_revision(engine)
        after = migrate.upgrade(engine)
    finally:
        engine.dispose()
    data = {"database": mask_url(settings.effective_database_url), "from": before, "to": after}
    emit(data, as_json, lambda: get_console().print(f"schema {before or 'empty'} -> {after}"))


def db_current(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the schema revision of the store (without changing it)."""
    from fleet_queue.settings import mask_url
    from fleet_queue.store import migrate
    from fleet_queue.store.engine import make_engine

    settings = settings_of(ctx)
    engine = make_engine(settings.effective_database_url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    data = {
        "database": mask_url(settings.effective_database_url),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }
    emit(
        data,
        as_json,
        lambda: get_console().print(
            f"{current or 'empty'} (head {head}"
            + (")" if current == head else "; run `fleet db upgrade`)")
        ),
    )


def register(app: typer.Typer) -> None:
    """Add ``db`` to the root app."""
    db_app.command("upgrade")(db_upgrade)
    db_app.command("current")(db_current)
    app.add_typer(db_app, name="db")


__all__ = ["register"]
