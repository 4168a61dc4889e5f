"""Alembic environment: uses the connection handed in by ``fleet_queue.store.migrate``, or a
URL given as ``-x url=...`` / ``FLEET_DATABASE_URL`` when run by plain ``alembic``."""

from __future__ import annotations

import os

from alembic import context

from fleet_queue.store.engine import make_engine
from fleet_queue.store.tables import metadata

config = context.config


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "FLEET_DATABASE_URL"
    )
    if not url:
        raise SystemExit("give the database as -x url=... or FLEET_DATABASE_URL")
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()
