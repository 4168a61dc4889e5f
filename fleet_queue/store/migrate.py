"""Apply the Alembic migrations programmatically: on first use of a store and by ``fleet db``.

Several processes may open a fresh store at once (workers, beat, the CLI); the upgrade runs
under a lock — SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock — so exactly one
creates the schema and the others find it at head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from fleet_queue.store.engine import WRITE, is_sqlite

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_PG_LOCK_KEY = 0x666C656574  # "fleet"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; a no-op when it is already there. Returns the new one."""
    if revision == "head" and current_revision(engine) == head_revision():
        return head_revision()
    config = alembic_config()
    with engine.connect() as conn:
        conn.execution_options(**WRITE)
        with conn.begin():
            if not is_sqlite(engine):
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    return current_revision(engine)
