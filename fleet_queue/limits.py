"""How big a card may be: its text is stored, shown on the board and typed into a pane.

A card's size is the UTF-8 bytes of its title, body and acceptance (as JSON), what the
delivered text is made of. Above ``FLEET_MAX_CARD_BYTES`` (default 64 KiB) a card is
refused with one line before anything is written: a 2 MB card would take minutes to
type into a pane and fill the agent's context for nothing.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from fleet_queue.errors import UsageError

DEFAULT_MAX_CARD_BYTES = 64 * 1024


class SizedCard(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def acceptance(self) -> Any: ...


def card_bytes(card: SizedCard) -> int:
    """The UTF-8 size of the text a card is delivered as (title, body, acceptance)."""
    size = len(card.title.encode("utf-8")) + len((card.body or "").encode("utf-8"))
    if card.acceptance is not None:
        size += len(json.dumps(card.acceptance, ensure_ascii=False, default=str).encode("utf-8"))
    return size


def check_card_size(card: SizedCard, limit: int = DEFAULT_MAX_CARD_BYTES) -> None:
    """``UsageError`` (one line) when ``card`` is bigger than ``limit`` bytes."""
    size = card_bytes(card)
    if size > limit:
        raise UsageError(
            f"card {card.id}: {size} bytes of text is over the limit of {limit}"
            " (FLEET_MAX_CARD_BYTES); put the detail in a file and name it in the card"
        )
