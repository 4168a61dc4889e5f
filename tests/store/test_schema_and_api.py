"""The migrations build exactly the tables the store uses; the scripting API works end to end."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import fleet_queue
from fleet_queue.cards import CardStatus
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore, migrate
from fleet_queue.store.tables import metadata


def test_migrations_match_the_tables(store: CardStore) -> None:
    assert store.schema_revision() == migrate.head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrate_on_first_use_is_idempotent(store_url: str) -> None:
    for _ in range(2):
        with CardStore(store_url) as store:
            assert store.schema_revision() == migrate.head_revision()


def test_enqueue_and_backlog(fleet_home: Path, tmp_path: Path) -> None:
    settings = Settings(home=fleet_home, tenant="scripts", host="h1")
    card = fleet_queue.enqueue("write notes", priority=3, settings=settings)
    assert card.id.startswith("c-") and card.status is CardStatus.READY
    again = fleet_queue.enqueue("x", id="k1", idempotency_key="key", settings=settings)
    assert fleet_queue.enqueue("y", id="k2", idempotency_key="key", settings=settings) == again
    nudges: list[str] = []
    with fleet_queue.Backlog(settings, on_change=nudges.append) as backlog:
        backlog.create("A1", "schema")
        backlog.create("A2", "service", depends_on=["A1"])
        file = tmp_path / "more.yaml"
        file.write_text("cards:\n- {id: B1, title: more, depends_on: [A2]}\n")
        assert backlog.import_file(file).created == 1
        assert backlog.create_many([{"id": "C1", "title": "dict card"}]).created == 1
        assert "A2" not in {c.id for c in backlog.list(ready_only=True)}
        claim = backlog.store.claim("w1", None, "h1", 60, card_id="A1")
        assert claim is not None
        assert backlog.complete("A1", claim.token).status is CardStatus.DONE
        assert backlog.get("A2").unmet_deps == 0
        assert {c.id for c in backlog.list(status="done")} == {"A1"}
    assert nudges.count("created") == 4 and "done" in nudges


def test_the_head_constant_is_alembics_head() -> None:
    """``migrate.HEAD`` spares every process Alembic; a new migration must move it too."""
    assert migrate.head_revision() == migrate.HEAD


def test_migration_0002_counts_the_delivery_failures_already_recorded(store_url: str) -> None:
    """A store upgraded with cards in flight keeps their delivery-failure count: the releases
    since the card's last delivery or unblock, read once from the events by 0002."""
    import sqlalchemy as sa

    from fleet_queue.store.engine import make_engine

    engine = make_engine(store_url)
    try:
        migrate.upgrade(engine, "0001")
        card = {"tenant_id": "t1", "title": "x", "status": "ready", "depends_on": "[]"}
        with engine.begin() as conn:
            for card_id in ("a", "b"):
                conn.execute(
                    sa.text(
                        "INSERT INTO cards (tenant_id, id, title, status, depends_on,"
                        " created_host, max_attempts, created_at, updated_at)"
                        " VALUES (:tenant_id, :id, :title, :status, :depends_on, 'h1', 3, 0, 0)"
                    ),
                    {**card, "id": card_id},
                )
            history = [
                ("a", "released", "delivery failed: dead pane"),
                ("a", "delivered", None),
                ("a", "released", "delivery failed: dead pane"),
                ("a", "released", "pane busy"),
                ("b", "released", "delivery failed: not accepted"),
                ("b", "released", "delivery failed: not accepted"),
            ]
            for card_id, kind, detail in history:
                conn.execute(
                    sa.text(
                        "INSERT INTO events (tenant_id, host, card_id, kind, detail, at)"
                        " VALUES ('t1', 'h1', :c, :k, :d, 0)"
                    ),
                    {"c": card_id, "k": kind, "d": detail},
                )
        assert migrate.upgrade(engine) == migrate.HEAD
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, delivery_failures FROM cards ORDER BY id"))
            assert [tuple(row) for row in rows] == [("a", 1), ("b", 2)]
    finally:
        engine.dispose()


def test_a_script_with_an_open_umask_still_gets_a_private_store(fleet_home: Path) -> None:
    """The CLI and workers set umask 077; a script using the API keeps its own (022 here)."""
    old = os.umask(0o022)
    try:
        settings = Settings(home=fleet_home / "scripted", tenant="scripts", host="h1")
        fleet_queue.enqueue("private", settings=settings)
    finally:
        os.umask(old)
    files = [p for p in (fleet_home / "scripted").iterdir() if p.name.startswith("fleet.db")]
    assert files, "no store file was created"
    for path in files:  # the database and SQLite's -wal/-shm beside it
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
