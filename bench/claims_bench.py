"""(e) Claims/s with 4 processes through ``CardStore.claim`` vs the raw SQL claim, per backend.

A wrapper over ``bench.store_bench``: each repetition uses a fresh database (a new
SQLite file, a new PostgreSQL database) so no run sees another's rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Figure, Stats
from bench.store_bench import claims_raw, claims_store
from tests.support.servers import postgres_server

CLAIMERS = 4


def run(quick: bool = False) -> list[Figure]:
    claims = 300 if quick else 3000
    reps = 2 if quick else 3
    ours: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    raw: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    with tempfile.TemporaryDirectory(prefix="fqb-claims-") as tmp:
        base = f"sqlite:///{Path(tmp)}"
        for rep in range(reps):
            ours["sqlite"].append(claims_store(f"{base}/s{rep}.db", claims, CLAIMERS))
            raw["sqlite"].append(claims_raw(f"{base}/r{rep}.db", claims, CLAIMERS))
    with postgres_server() as pg:
        for rep in range(reps):
            ours["postgresql"].append(claims_store(pg.create_database(f"s{rep}"), claims, CLAIMERS))
            raw["postgresql"].append(claims_raw(pg.create_database(f"r{rep}"), claims, CLAIMERS))
    return [
        Figure(
            "claims",
            f"(e) claims/s, {CLAIMERS} processes, {backend}",
            "claims/s",
            Stats.of(ours[backend]),
            "raw SQL claim, same processes",
            Stats.of(raw[backend]),
            extra={"claims": claims, "samples": ours[backend], "baseline_samples": raw[backend]},
        )
        for backend in ours
    ]
