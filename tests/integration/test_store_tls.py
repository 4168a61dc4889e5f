"""PostgreSQL's ``sslmode`` in ``FLEET_DATABASE_URL`` reaches libpq unchanged: a server
without TLS is refused under ``sslmode=require`` and used under ``sslmode=disable``."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from fleet_queue.store.engine import make_engine


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_sslmode_require_refuses_a_server_without_tls(pg_url: str, mode: str) -> None:
    engine = make_engine(f"{pg_url}?sslmode={mode}")
    try:
        with pytest.raises(sa.exc.OperationalError, match="SSL"):
            engine.connect().close()
    finally:
        engine.dispose()


def test_sslmode_disable_connects(pg_url: str) -> None:
    engine = make_engine(f"{pg_url}?sslmode=disable")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
