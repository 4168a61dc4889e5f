"""Engines for the card store, tuned per backend, and the database clock.

SQLite: WAL (readers never wait for the writer), a generous busy timeout, foreign keys on,
and every write transaction opened with ``BEGIN IMMEDIATE`` so two claimers serialise at
BEGIN instead of failing at COMMIT with "database is locked". pysqlite's own transaction
handling is switched off (the documented SQLAlchemy recipe) so our BEGIN is the one used.

PostgreSQL: psycopg 3; claims lock with ``FOR UPDATE SKIP LOCKED`` (see ``ops``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from fleet_queue.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import dml as postgresql_dml
    from sqlalchemy.dialects.sqlite import dml as sqlite_dml

    UpsertInsert = sqlite_dml.Insert | postgresql_dml.Insert

WRITE = {"fleet_write": True}
"""Execution options of a connection that will write (SQLite: BEGIN IMMEDIATE)."""


class db_now(FunctionElement[float]):
    """The database's current time as epoch seconds: one clock for every host."""

    type = sa.Double()
    inherit_cache = True
    name = "db_now"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_now, "postgresql")
def _db_now_postgresql(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


def normalize_url(url: str) -> URL:
    """Accept ``postgresql://`` and ``postgres://`` and use psycopg 3 for them."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(f"not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend in {"postgres", "postgresql"}:
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for the store's URL (SQLite file or PostgreSQL)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(parsed, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        path = Path(url.database).expanduser()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 here, whatever the caller's umask (a script using the Python API
        # keeps its own): SQLite gives the -wal and -shm files the database file's mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("fleet_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def upsert_insert(dialect: str) -> Callable[[sa.Table], UpsertInsert]:
    """The backend's ``INSERT`` that takes ``ON CONFLICT``, imported for that backend only:
    every process opens a store, and the other backend's dialect is 2-3 MiB of modules it
    would never use (SQLAlchemy loads only the engine's own dialect)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert

    return postgresql_insert
