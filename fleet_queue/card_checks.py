"""The checks a new card must pass beyond its shape: names, types and ranges.

Called once per ``NewCard`` (``fleet_queue.cards``) and on raw imported data, so a bad
card is refused with one line before the store sees it — never a driver traceback:

- ``id`` and each ``depends_on``: the card-id rule of :mod:`fleet_queue.names`
  (shell-safe: it is typed into ``fleet card done <id>``);
- ``target_agent``: the agent-name rule;
- ``title``: a string (``None`` is not the title ``"None"``);
- ``priority``: an integer (``1.5`` is refused, not truncated) in the store's 32-bit range;
- ``max_attempts``: an integer from 1 to 1000;
- ``acceptance``: JSON data (no ``nan``, no arbitrary objects: it is stored as JSON);
- a fencing ``token``: an integer the store's 64-bit column holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fleet_queue.errors import UsageError
from fleet_queue.names import name_problem

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_ATTEMPTS_LIMIT = 1000
TOKEN_MAX = 2**63 - 1


def integer_problem(name: str, value: Any, low: int, high: int) -> str | None:
    """Why ``value`` is not an integer in ``[low, high]``; None when it is."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            return f"{name} must be an integer, not {value!r}"
    if not low <= value <= high:
        return f"{name} {value} is out of range ({low} to {high})"
    return None


def new_card_problem(card: Any) -> str | None:
    """The first reason ``card`` (a ``NewCard`` being built) cannot be stored, or None."""
    for kind, value in (("card id", card.id), *(("card id", d) for d in card.depends_on)):
        problem = name_problem(kind, value)
        if problem:
            return problem
    if not isinstance(card.title, str):
        return f"card {card.id}: title must be a string, not {type(card.title).__name__}"
    if card.target_agent is not None and (problem := name_problem("agent", card.target_agent)):
        return f"card {card.id}: target_agent: {problem}"
    problem = integer_problem("priority", card.priority, INT32_MIN, INT32_MAX)
    if problem is None and card.max_attempts is not None:
        problem = integer_problem("max_attempts", card.max_attempts, 1, MAX_ATTEMPTS_LIMIT)
    if problem is None:
        problem = json_problem("acceptance", card.acceptance)
    return f"card {card.id}: {problem}" if problem else None


def json_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON (an object, ``nan``); None when it can."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"{name} must be JSON data (text, numbers, lists, mappings): {exc}"
    return None


def check_token(token: Any) -> None:
    """``UsageError`` for a fencing token that is no integer the store can hold."""
    problem = integer_problem("token", token, 0, TOKEN_MAX)
    if problem:
        raise UsageError(problem)


def check_new_card(card: Any) -> None:
    """``UsageError`` (one line) for a card that :func:`new_card_problem` refuses."""
    problem = new_card_problem(card)
    if problem:
        raise UsageError(problem)


def check_raw_card(item: Mapping[str, Any]) -> None:
    """``UsageError`` (one line) for imported data that :func:`raw_card_problem` refuses."""
    problem = raw_card_problem(item)
    if problem:
        raise UsageError(problem)


def raw_card_problem(item: Mapping[str, Any]) -> str | None:
    """Checks on imported data before it is converted (a float priority would be truncated,
    a null title would become ``"None"``)."""
    if isinstance(item.get("id"), str) and (problem := name_problem("card id", item["id"])):
        return problem
    if "title" in item and not isinstance(item["title"], str):
        return f"card {item.get('id')!r}: title must be a string, not {item['title']!r}"
    for name, low, high in (
        ("priority", INT32_MIN, INT32_MAX),
        ("max_attempts", 1, MAX_ATTEMPTS_LIMIT),
    ):
        value = item.get(name)
        if value is None or (name == "priority" and isinstance(value, str)):
            continue  # absent, or a number as text ("5") that the card's parser reads
        problem = integer_problem(name, value, low, high)
        if problem:
            return f"card {item.get('id')!r}: {problem}"
    return None
