"""A process that opens a store already at head loads only what it uses.

Every Celery process opens the store. Alembic (about 50 modules) is needed only when the
schema must be migrated, and SQLAlchemy's dialect of the other backend (2-3 MiB) never:
both once sat in every host worker's memory (issue 19, RSS). Each check runs in a fresh
interpreter, so what this test process has imported cannot hide an import.
"""

from __future__ import annotations

import json
import subprocess
import sys

from alembic.runtime.migration import MigrationContext

from fleet_queue.store import CardStore, migrate
from fleet_queue.store.engine import make_engine
from tests.support.timing import scaled

DELIVERY_PATH = """
import json, sys
from fleet_queue.cards import NewCard
from fleet_queue.fleet_status import AgentStatus
from fleet_queue.store import CardStore, migrate

with CardStore(sys.argv[1], tenant="t1", host="h1") as store:
    assert store.schema_revision() == migrate.HEAD  # what fleet doctor asks
    store.create(NewCard(id="lean-1", title="a card"))
    claim = store.claim("a1", None, "h1", 60)
    assert claim is not None and claim.card.id == "lean-1", claim
    assert store.begin_delivery("lean-1", claim.token, "a1", 1.0).card is not None
    assert store.record_delivery("lean-1", claim.token, "a1")
    store.upsert_agent_statuses([AgentStatus(tenant_id="t1", host="h1", agent="a1")])
    store.renew_working(["a1"], 60, 3600)
    store.spend_marks("a1")
    store.complete("lean-1", claim.token)
    store.list()
print(json.dumps(sorted(sys.modules)))
"""


def modules_after_the_delivery_path(url: str) -> list[str]:
    """The modules a fresh interpreter holds after opening the store and walking a card
    through claim, delivery, status, spend marks and completion (and asking its revision)."""
    run = subprocess.run(
        [sys.executable, "-c", DELIVERY_PATH, url],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    assert run.returncode == 0, run.stderr
    modules: list[str] = json.loads(run.stdout)
    return modules


def test_a_store_at_head_imports_no_alembic_and_only_its_own_dialect(
    store: CardStore, store_url: str
) -> None:
    # ``store`` has migrated the database to head; the fresh process only opens it
    modules = modules_after_the_delivery_path(store_url)
    sqlite = store_url.startswith("sqlite")
    own, other = ("sqlite", "postgresql") if sqlite else ("postgresql", "sqlite")
    assert f"sqlalchemy.dialects.{own}" in modules  # the check can see a dialect at all
    assert [m for m in modules if m.startswith("alembic")] == []
    assert [m for m in modules if m.startswith(f"sqlalchemy.dialects.{other}")] == []
    assert "mako" not in modules
    if other == "postgresql":
        assert [m for m in modules if m.startswith("psycopg")] == []


def test_the_plain_revision_read_agrees_with_alembic(store_url: str) -> None:
    """The read that decides whether Alembic is needed at all: empty, behind, at head."""
    engine = make_engine(store_url)

    def alembic_says() -> str | None:
        with engine.connect() as conn:
            revision: str | None = MigrationContext.configure(conn).get_current_revision()
            return revision

    try:
        seen = [(migrate.current_revision(engine), alembic_says())]
        for revision in ("0001", "head"):
            migrate.upgrade(engine, revision)
            seen.append((migrate.current_revision(engine), alembic_says()))
    finally:
        engine.dispose()
    assert seen == [(None, None), ("0001", "0001"), (migrate.HEAD, migrate.HEAD)]
