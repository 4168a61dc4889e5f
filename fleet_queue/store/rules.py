"""The store's rules that need no database: what a refusal says and when one is due.

Pure functions over a card's row or a batch of new cards, kept apart from the SQL
(``statements``) and the transactions (``lifecycle``, ``intake``) that apply them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.engine import RowMapping

from fleet_queue.cards import NewCard
from fleet_queue.errors import ConflictError, CycleError, UsageError
from fleet_queue.store.read_statements import CLAIMED, READY


def names(ids: Iterable[str], limit: int = 5) -> str:
    """A few ids for a refusal, sorted, and how many more there are."""
    ids = sorted(ids)
    shown = ", ".join(ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def epoch(value: datetime | float | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    return value.timestamp()


def clean_reason(reason: str) -> str:
    """A reason as stored: cleaned of control characters; an empty one is refused."""
    from fleet_queue.sanitize import sanitize_text

    text = sanitize_text(str(reason or "")).strip()
    if not text:
        raise UsageError("a reason is required")
    return text


def held(row: RowMapping, token: int) -> bool:
    """The card is claimed under ``token`` (what the fence will require)."""
    return bool(row["status"] == CLAIMED and row["token"] == token)


def delivery_blocked_reason(failures: int, max_attempts: int, error: str) -> str:
    error = error or "no detail"
    times = "time" if failures == 1 else "times"
    return (
        f"delivery failed {failures} {times} since the last delivery or unblock"
        f" (max_attempts {max_attempts}); last error: {error}"
    )


def check_ttl(ttl: float) -> None:
    if not isinstance(ttl, int | float) or ttl < 0:
        raise UsageError(f"lease ttl must be a number of seconds >= 0, not {ttl!r}")


def stale_message(row: RowMapping, token: int, action: str) -> str:
    card_id = row["id"]
    if row["status"] == CLAIMED:
        return (
            f"stale token {token} for card {card_id!r}: it is claimed under token {row['token']}"
            f" by {row['lease_owner']}; cannot {action}"
        )
    return (
        f"stale token {token} for card {card_id!r}: it is {row['status']} (token {row['token']});"
        f" cannot {action}"
    )


def lease_refusal(row: RowMapping, token: int, action: str, now: float, margin: float) -> str:
    """Why a lease-holder operation under ``token`` was refused: a stale token, or a lease
    that has expired or has no more than ``margin`` seconds left (database time)."""
    if not held(row, token):
        return stale_message(row, token, action)
    left = (row["lease_expires_at"] or now) - now
    card_id = row["id"]
    if left <= 0:
        return (
            f"lease of card {card_id!r} under token {token} expired {-left:.3f}s ago;"
            f" cannot {action}"
        )
    return (
        f"lease of card {card_id!r} under token {token} has {left:.3f}s left, not more than"
        f" the {margin:g}s margin; cannot {action}"
    )


def refuse_unclaimable(row: RowMapping, agent: str) -> None:
    card_id = row["id"]
    if row["status"] != READY:
        raise ConflictError(f"card {card_id!r} is {row['status']}, not ready")
    if row["unmet_deps"]:
        raise ConflictError(
            f"card {card_id!r} waits for {row['unmet_deps']} unfinished dependencies"
        )
    if row["target_agent"] and row["target_agent"] != agent:
        raise ConflictError(f"card {card_id!r} is for agent {row['target_agent']}, not {agent}")


def refuse_batch_duplicates(batch: Sequence[NewCard]) -> None:
    seen: set[str] = set()
    dup_ids = {c.id for c in batch if c.id in seen or seen.add(c.id)}  # type: ignore[func-returns-value]
    if dup_ids:
        raise ConflictError(f"duplicate card id(s) in the batch: {names(dup_ids)}")
    keys: set[str] = set()
    dup_keys = {
        c.idempotency_key
        for c in batch
        if c.idempotency_key is not None
        and (c.idempotency_key in keys or keys.add(c.idempotency_key))  # type: ignore[func-returns-value]
    }
    if dup_keys:
        raise ConflictError(f"duplicate idempotency key(s) in the batch: {names(dup_keys)}")


def refuse_batch_cycle(batch: Sequence[NewCard]) -> None:
    """Kahn's algorithm on the batch's own edges; name one cycle if the sort gets stuck."""
    ids = {c.id for c in batch}
    deps = {c.id: [d for d in c.depends_on if d in ids] for c in batch}
    indegree = {cid: len(ds) for cid, ds in deps.items()}
    users: dict[str, list[str]] = {}
    for cid, ds in deps.items():
        for d in ds:
            users.setdefault(d, []).append(cid)
    queue = deque(cid for cid, n in indegree.items() if n == 0)
    done = 0
    while queue:
        cid = queue.popleft()
        done += 1
        for user in users.get(cid, ()):
            indegree[user] -= 1
            if indegree[user] == 0:
                queue.append(user)
    if done == len(ids):
        return
    stuck = {cid for cid, n in indegree.items() if n > 0}
    start = min(stuck)
    path, seen = [start], {start}
    while True:
        nxt = min(d for d in deps[path[-1]] if d in stuck)
        if nxt in seen:
            cycle = [*path[path.index(nxt) :], nxt]
            raise CycleError(f"dependency cycle refused: {' -> '.join(cycle)}")
        path.append(nxt)
        seen.add(nxt)


def unwind(parent: dict[str, str | None], goal: str) -> list[str]:
    path = [goal]
    node = parent[goal]
    while node is not None:
        path.append(node)
        node = parent[node]
    return path[::-1]
