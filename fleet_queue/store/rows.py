"""Rows of the store's tables turned into the frozen values of ``fleet_queue.cards``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from fleet_queue.cards import Card, CardStatus, Event, EventKind, epoch_to_datetime
from fleet_queue.fleet_status import AgentStatus, PauseState, Readiness


def _dt(value: float | None) -> datetime | None:
    return epoch_to_datetime(value)


def _dt_required(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def card_from_row(row: Mapping[Any, Any]) -> Card:
    return Card(
        id=row["id"],
        tenant_id=row["tenant_id"],
        title=row["title"],
        body=row["body"],
        phase=row["phase"],
        priority=row["priority"],
        status=CardStatus(row["status"]),
        depends_on=tuple(row["depends_on"] or ()),
        unmet_deps=row["unmet_deps"],
        target_agent=row["target_agent"],
        target_class=row["target_class"],
        created_host=row["created_host"],
        host=row["host"],
        lease_owner=row["lease_owner"],
        token=row["token"],
        lease_expires_at=_dt(row["lease_expires_at"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        idempotency_key=row["idempotency_key"],
        acceptance=row["acceptance"],
        result=row["result"],
        reason=row["reason"],
        created_at=_dt_required(row["created_at"]),
        updated_at=_dt_required(row["updated_at"]),
        claimed_at=_dt(row["claimed_at"]),
        delivered_at=_dt(row["delivered_at"]),
        completed_at=_dt(row["completed_at"]),
    )


def event_from_row(row: Mapping[Any, Any]) -> Event:
    return Event(
        id=row["id"],
        tenant_id=row["tenant_id"],
        host=row["host"],
        card_id=row["card_id"],
        kind=EventKind(row["kind"]),
        agent=row["agent"],
        token=row["token"],
        detail=row["detail"],
        at=_dt_required(row["at"]),
    )


def agent_from_row(row: Mapping[Any, Any]) -> AgentStatus:
    return AgentStatus(
        tenant_id=row["tenant_id"],
        host=row["host"],
        agent=row["agent"],
        runtime=row["runtime"],
        agent_class=row["agent_class"],
        heartbeat_at=_dt(row["heartbeat_at"]),
        health=bool(row["health"]),
        heartbeat_status=row["heartbeat_status"],
        pane_alive=bool(row["pane_alive"]),
        pid=row["pid"],
        pane_command=row["pane_command"],
        idle_seconds=row["idle_seconds"],
        readiness=cast(Readiness, row["readiness"]),
        current_card=row["current_card"],
        updated_at=_dt(row["updated_at"]),
    )


def agent_to_params(status: AgentStatus) -> dict[str, Any]:
    return {
        "tenant_id": status.tenant_id,
        "host": status.host,
        "agent": status.agent,
        "runtime": status.runtime,
        "agent_class": status.agent_class,
        "heartbeat_at": status.heartbeat_at.timestamp() if status.heartbeat_at else None,
        "health": bool(status.health),
        "heartbeat_status": status.heartbeat_status,
        "pane_alive": bool(status.pane_alive),
        "pid": status.pid,
        "pane_command": status.pane_command,
        "idle_seconds": status.idle_seconds,
        "readiness": status.readiness,
        "current_card": status.current_card,
    }


def pause_from_row(row: Mapping[Any, Any] | None) -> PauseState:
    if row is None:
        return PauseState(paused=False)
    return PauseState(
        paused=bool(row["paused"]),
        reason=row["reason"],
        by=row["paused_by"],
        at=_dt(row["changed_at"]),
    )
