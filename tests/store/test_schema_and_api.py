"""The migrations build exactly the tables the store uses; the scripting API works end to end."""

from __future__ import annotations

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
