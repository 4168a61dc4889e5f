"""How a card reads when it is typed into an agent's pane.

The text ends with the exact commands that close the card, carrying the
fencing token: an agent that finishes after its lease was reclaimed gets a
stale-token refusal instead of closing someone else's claim.
"""

from __future__ import annotations

import shlex
from typing import Protocol


class CardLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...


def render_card(card: CardLike, token: int, acceptance: object | None = None) -> str:
    """The delivered text: title, body, acceptance, then the two closing commands."""
    lines = [f"Card {card.id}: {card.title}"]
    body = (card.body or "").strip()
    if body:
        lines += ["", body]
    if acceptance:
        lines += ["", f"Acceptance: {acceptance}"]
    close = f"{shlex.quote(card.id)} --token {int(token)}"  # ids are shell-safe; quoted anyway
    lines += [
        "",
        f"When done, run: fleet card done {close}",
        f'If you cannot finish, run: fleet card fail {close} --reason "<why>"',
    ]
    return "\n".join(lines)
