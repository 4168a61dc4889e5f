"""The fleet's own state in the store: the fleet-wide pause flag and what each host last
saw of its agents (their status rows)."""

from __future__ import annotations

from collections.abc import Sequence

from fleet_queue.cards import EventKind
from fleet_queue.fleet_status import AgentStatus, PauseState
from fleet_queue.store import rules
from fleet_queue.store.rows import agent_from_row, agent_to_params
from fleet_queue.store.transactions import StoreBase


class FleetState(StoreBase):
    """Pause and resume the fleet; write and read the agents' status rows."""

    def pause_state(self) -> PauseState:
        with self._read() as conn:
            return self._pause_state(conn)

    def pause(self, reason: str, by: str) -> PauseState:
        """Raise the fleet-wide pause flag: the supervisor dispatches nothing while it is up."""
        return self._set_pause(True, rules.clean_reason(reason), by)

    def resume(self, by: str) -> PauseState:
        """Lower the pause flag."""
        return self._set_pause(False, None, by)

    def _set_pause(self, paused: bool, reason: str | None, by: str) -> PauseState:
        with self._write() as tx:
            tx.conn.execute(self.sql.set_pause(paused, reason, by))
            kind = EventKind.PAUSED if paused else EventKind.RESUMED
            self._event(tx, None, kind, agent=by, detail=reason)
            tx.changes.append(kind)
            return self._pause_state(tx.conn)

    def pause_agent(self, agent: str, reason: str, by: str) -> None:
        """Pause one agent by name: the tick claims nothing for it, its host worker releases
        a delivery to it. Kept as its event (the latest pause or resume of the agent wins)."""
        with self._write() as tx:
            detail = f"by {by}: {rules.clean_reason(reason)}"
            self._event(tx, None, EventKind.AGENT_PAUSED, agent=agent, detail=detail)
            tx.changes.append(EventKind.AGENT_PAUSED)

    def resume_agent(self, agent: str, by: str) -> None:
        with self._write() as tx:
            self._event(tx, None, EventKind.AGENT_RESUMED, agent=agent, detail=f"by {by}")
            tx.changes.append(EventKind.AGENT_RESUMED)

    def upsert_agent_statuses(self, rows: Sequence[AgentStatus]) -> None:
        """Write what a host saw of its agents (one row per tenant, host and agent)."""
        if not rows:
            return
        with self._write() as tx:
            tx.conn.execute(self.sql.upsert_agents(), [agent_to_params(r) for r in rows])

    def forget_agent(self, agent: str) -> int:
        """Drop an agent's status rows (it left the roster); how many were dropped."""
        with self._write() as tx:
            return tx.conn.execute(self.sql.forget_agent(agent)).rowcount or 0

    def agent_statuses(self, host: str | None = None) -> list[AgentStatus]:
        with self._read() as conn:
            rows = conn.execute(self.sql.agent_rows(host)).mappings()
            return [agent_from_row(row) for row in rows]
