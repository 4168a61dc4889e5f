"""Read cards from files: a YAML list, JSON Lines, or a goals file like NORTH_STAR.yaml.

Formats (chosen by content, not only by extension):

- **YAML list** — ``[{id, title, body?, phase?, priority?, depends_on?, target_agent?,
  target_class?, acceptance?, idempotency_key?, max_attempts?}, ...]``, or a mapping with
  that list under ``cards:``.
- **JSON Lines** (``.jsonl``/``.ndjson``) — one such object per line; blank lines ignored.
- **Goals file** — a YAML mapping with ``goals:`` (as in the seeds' NORTH_STAR.yaml): each
  goal's ``id``, ``title``, ``phase``, ``priority`` and ``depends_on`` become a card.
  Word priorities map to numbers: must-have 30, should-have 20, could-have 10,
  nice-to-have 10, won't-have 0; numbers are kept.

Every error names the file (and line for JSONL) and stops the import before anything is
written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from fleet_queue.card_checks import check_raw_card
from fleet_queue.cards import NewCard
from fleet_queue.errors import FleetError, UsageError, parse_problem

GOAL_PRIORITIES = {
    "must-have": 30,
    "should-have": 20,
    "could-have": 10,
    "nice-to-have": 10,
    "won't-have": 0,
    "wont-have": 0,
}


def load_cards(path: Path) -> list[NewCard]:
    """All cards described by ``path``, validated; UsageError names the first bad one."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        return list(_jsonl(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid YAML/JSON: {parse_problem(exc)}") from None
    return cards_from_data(data, str(path))


def cards_from_data(data: Any, source: str) -> list[NewCard]:
    """Cards from already-parsed YAML/JSON: a list, ``{cards: [...]}`` or ``{goals: [...]}``."""
    if isinstance(data, Mapping) and "goals" in data:
        return [
            _card(_goal(g, source), source, i) for i, g in enumerate(_items(data["goals"], source))
        ]
    if isinstance(data, Mapping) and "cards" in data:
        data = data["cards"]
    return [_card(item, source, i) for i, item in enumerate(_items(data, source))]


def _items(data: Any, source: str) -> list[Any]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise UsageError(f"{source}: expected a list of cards, a 'cards:' list or a 'goals:' list")
    return data


def _card(item: Any, source: str, index: int) -> NewCard:
    if not isinstance(item, Mapping):
        raise UsageError(f"{source}: item {index + 1} is not a mapping")
    return _checked(item, f"{source}: item {index + 1}")


def _checked(item: Mapping[str, Any], where: str) -> NewCard:
    """One imported card, its raw values checked first; errors say ``where`` it was."""
    try:
        check_raw_card(item)
        return NewCard.from_mapping(item)
    except FleetError as exc:
        raise UsageError(f"{where}: {exc.message}") from None


def _goal(goal: Any, source: str) -> dict[str, Any]:
    if not isinstance(goal, Mapping):
        raise UsageError(f"{source}: every goal must be a mapping")
    card: dict[str, Any] = {
        "id": goal.get("id"),
        "title": goal.get("title"),
        "depends_on": goal.get("depends_on") or [],
        "priority": _goal_priority(goal.get("priority", 0), goal.get("id"), source),
    }
    if goal.get("phase") is not None:
        card["phase"] = str(goal["phase"])
    for key in ("body", "acceptance", "target_agent", "target_class"):
        if goal.get(key) is not None:
            card[key] = goal[key]
    if goal.get("id") is not None:
        card["idempotency_key"] = f"goal:{goal['id']}"
    return card


def _goal_priority(value: Any, goal_id: Any, source: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    key = str(value).strip().lower()
    if key in GOAL_PRIORITIES:
        return GOAL_PRIORITIES[key]
    words = ", ".join(GOAL_PRIORITIES)
    raise UsageError(f"{source}: goal {goal_id!r}: priority {value!r} is not a number or {words}")


def _jsonl(path: Path) -> Iterator[NewCard]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text: {parse_problem(exc)}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        if not isinstance(item, Mapping):
            raise UsageError(f"{path}:{number}: expected a JSON object")
        yield _checked(item, f"{path}:{number}")
