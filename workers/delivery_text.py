"""What one delivery types and what it reports: the label, the message, the receipt.

The values and text rules of ``workers.delivery``, apart from the ``Deliverer`` that
drives tmux: a caller that only reads a receipt or builds a label needs none of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from fleet_queue.errors import DeliveryError
from fleet_queue.sanitize import sanitize_text
from workers import tty as ttys
from workers.acceptance import marker
from workers.heartbeat import utcnow
from workers.runtimes import LaunchPlan

_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class DeliveryReceipt:
    agent: str
    host: str
    source: str
    text: str
    """Exactly what was typed: the source label and the sanitized text."""
    method: str
    """line (canonical-mode paste ending in a newline) | paste (bracketed, then Enter) |
    earlier (a retry found its earlier copy accepted and typed nothing)"""
    verified: bool | None
    """True: accepted (see ``evidence``); None: not asked to verify."""
    elapsed_ms: float
    verify_ms: float | None = None
    nonce: str = ""
    evidence: str | None = None
    """read (the line reader read it) | screen (marker shown, no draft, bytes read) |
    runtime (the runtime's own record)"""
    delivered_at: datetime = field(default_factory=utcnow)

    @property
    def ms(self) -> float:
        """Total milliseconds: typing plus verification."""
        return self.elapsed_ms + (self.verify_ms or 0.0)

    def as_dict(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "host": self.host,
            "source": self.source,
            "chars": len(self.text),
            "method": self.method,
            "verified": self.verified,
            "nonce": self.nonce,
            "evidence": self.evidence,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "verify_ms": None if self.verify_ms is None else round(self.verify_ms, 3),
            "delivered_at": self.delivered_at.isoformat(),
        }


@dataclass(frozen=True)
class PaneState:
    dead: bool
    in_mode: bool
    activity: int
    width: int
    height: int = 24
    tty: str = ""
    pid: int | None = None


@dataclass
class Typing:
    """One delivery in flight: what was typed, into what, and what was measured before."""

    plan: LaunchPlan
    target: str
    message: str
    nonce: str
    width: int
    height: int
    tty: ttys.TtyState | None
    reads_before: dict[int, int]
    since: datetime
    why: str = "no evidence yet"
    taken: bool = False
    """The program read at least the delivered bytes (not yet proof it accepted them)."""

    @property
    def canonical(self) -> bool:
        return self.tty is not None and self.tty.canonical

    @property
    def size(self) -> int:
        return len(self.message.encode("utf-8")) + (1 if self.canonical else 0)


def label(source: str, nonce: str = "") -> str:
    """The one-line source label; the label itself is sanitized and kept to one line."""
    clean = _WS.sub(" ", sanitize_text(source)).strip()
    if not clean:
        raise DeliveryError("empty source label")
    return f"[from {clean} {marker(nonce)}] " if nonce else f"[from {clean}] "


def clean_body(text: str) -> str:
    body = sanitize_text(text)
    if not body.strip():
        raise DeliveryError("empty message")
    return body


def compose(source: str, text: str, nonce: str = "") -> str:
    return label(source, nonce) + clean_body(text)


def check_whole(agent: str, message: str) -> None:
    """A line reader gets at most 4,095 bytes of a line; refuse what it would cut."""
    longest = max(len(line.encode("utf-8")) + 1 for line in message.split("\n"))
    if longest > ttys.MAX_CANON_LINE:
        raise DeliveryError(
            f"agent {agent!r} reads lines (canonical mode) of at most {ttys.MAX_CANON_LINE}"
            f" bytes with the newline; this text has a line of {longest}: refused, nothing typed"
        )
