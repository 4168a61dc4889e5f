"""Apply the Alembic migrations programmatically: on first use of a store and by ``fleet db``.

Several processes may open a fresh store at once (workers, beat, the CLI); the upgrade runs
under a lock — SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock — so exactly one
creates the schema and the others find it at head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, exc, text

from fleet_queue.store.engine import WRITE, is_sqlite

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_PG_LOCK_KEY = 0x666C656574  # "fleet"

HEAD = "0005"
"""The newest migration's revision (a test keeps it equal to Alembic's head). Every
process opens the store; comparing with this constant spares each one importing
Alembic and parsing the migration scripts when the schema is already current."""


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version``, None when there is no schema yet: read with
    plain SQL, as Alembic reads it (one row: the history has no branches), so that asking
    (``fleet doctor``, every store's first open) does not import Alembic."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except exc.DBAPIError:
        return None


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; a no-op when it is already there. Returns the new one."""
    if revision == "head" and current_revision(engine) == HEAD:
        return HEAD
    from alembic import command

    config = alembic_config()
    with engine.connect() as conn:
        conn.execution_options(**WRITE)
        with conn.begin():
            if not is_sqlite(engine):
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    return current_revision(engine)
