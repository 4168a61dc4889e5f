"""What the store holds of the fleet beside its cards: each agent's status row, as its host
last saw it, and the fleet-wide pause flag. Plain frozen values, no SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fleet_queue.plain_data import plain_fields

Readiness = Literal[
    "working",
    "waiting",
    "available",
    "stale",
    "dead",
    "unknown",
    "paused",
    "broken",
    "briefing",
    "stopped",
]
"""``paused``: the agent's host has ``run/PAUSED``, or the agent was paused by name;
``broken``: its host worker stopped restarting it (too many crashes); ``briefing``: a new
pane that has not yet received its brief; ``stopped``: its host's fleet was stopped on
purpose (``fleet down``, Ctrl-C on ``fleet up``). The tick gives none of them a card."""


@dataclass(frozen=True)
class AgentStatus:
    """What a host worker last saw of one agent (written per host, read by ``ps``/supervisor)."""

    tenant_id: str
    host: str
    agent: str
    runtime: str | None = None
    agent_class: str | None = None
    heartbeat_at: datetime | None = None
    health: bool = False
    heartbeat_status: str | None = None
    pane_alive: bool = False
    pid: int | None = None
    pane_command: str | None = None
    idle_seconds: float | None = None
    readiness: Readiness = "unknown"
    current_card: str | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return plain_fields(self)


@dataclass(frozen=True)
class PauseState:
    """The fleet-wide pause flag: nothing is dispatched while ``paused``."""

    paused: bool
    reason: str | None = None
    by: str | None = None
    at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "paused": self.paused,
            "reason": self.reason,
            "by": self.by,
            "at": self.at.isoformat() if self.at else None,
        }
