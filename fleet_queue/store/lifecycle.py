"""A card's life under a lease: claim, deliver, renew, complete, fail, release.

The rules kept here:

- **Claims are atomic.** A write transaction is ``BEGIN IMMEDIATE`` on SQLite (one writer at
  a time) and row locks with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (concurrent claimers
  skip each other's rows), so no card is ever under two live leases.
- **Claim order** for one agent: cards aimed at that agent, then at its class, then at
  anyone (only for a request that ``take_untargeted``: the tick says no for the
  orchestrator and the enhancer); within a lane higher priority first, then older first.
  Each lane is an equality probe on ``ix_cards_claim``; a batch asks each lane once for as
  many cards as agents want.
- **Fencing tokens** are per card and only grow: every claim sets ``token = token + 1``;
  release and reclaim never lower it. Lease-holder operations (deliver, renew, complete,
  fail, release) name the token; any other token is refused and changes nothing.
- **The fence includes time.** What could type a card or keep its lease alive
  (``begin_delivery``, ``mark_delivered``, ``renew``, ``renew_working``) also needs the
  lease to be live by the database clock, checked in the same statement; a typing
  delivery asks for a margin of lease left for the time the typing takes.
- **Every change writes an event** in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from fleet_queue.cards import DELIVERY_FAILED, Card, Claim, ClaimRequest, EventKind
from fleet_queue.errors import LeaseExpiredError, StaleTokenError, UsageError
from fleet_queue.fleet_status import PauseState
from fleet_queue.store import rules
from fleet_queue.store.engine import db_now
from fleet_queue.store.read_statements import BLOCKED, DONE, FAILED
from fleet_queue.store.rows import card_from_row
from fleet_queue.store.statements import (
    CARDS_BY_SEQ,
    LANE_PROBE,
    MARK_DELIVERED,
    TAKE,
    TAKE_ONE,
    expiry_in,
    finish,
    give_back,
    route,
)
from fleet_queue.store.transactions import StoreBase, Tx


@dataclass(frozen=True)
class DeliveryGate:
    """What ``begin_delivery`` found: the card when it may be typed now, else why not.

    ``pause`` is the fleet's pause flag from the same snapshot, and ``held`` the agent's
    own pause (``fleet agent pause``: ``by <actor>: <reason>``) when it has one: neither
    refuses here (the card is still ours to give back), the caller releases it.
    """

    card: Card | None
    pause: PauseState
    refusal: str = ""
    held: str | None = None


class Lifecycle(StoreBase):
    """Claim, deliver, renew, complete, fail and release (see the module's rules)."""

    # --- claim ----------------------------------------------------------------------------

    def claim(
        self,
        agent: str,
        agent_class: str | None,
        host: str,
        lease_ttl: float,
        card_id: str | None = None,
    ) -> Claim | None:
        """Lease the best card for ``agent`` (None if there is none), or the card ``card_id``.

        A named card that cannot be claimed (not ready, dependencies open, aimed at another
        agent) is refused with ConflictError; an unknown one with NotFoundError.
        """
        request = ClaimRequest(agent=agent, agent_class=agent_class, host=host, lease_ttl=lease_ttl)
        if card_id is None:
            claims = self.claim_batch([request])
            return claims[0] if claims else None
        rules.check_ttl(lease_ttl)
        with self._write() as tx:
            row = self._must(tx.conn, card_id, lock=True)
            rules.refuse_unclaimable(row, agent)
            return self._take(tx, [(request, row["seq"])])[0]

    def claim_batch(
        self, requests: Sequence[ClaimRequest], *, unless_paused: bool = False
    ) -> list[Claim]:
        """Lease at most one card to each requesting agent, all in one transaction.

        ``unless_paused`` (the supervisor's dispatch): read the pause flag inside the same
        transaction and claim nothing when it is up. The tick checked it when it began,
        but a pause set since then must not be met by a claim made after it.
        """
        first: dict[str, ClaimRequest] = {}
        for request in requests:
            first.setdefault(request.agent, request)
        unique = list(first.values())
        for request in unique:
            rules.check_ttl(request.lease_ttl)
        if not unique:
            return []
        with self._write() as tx:
            if unless_paused and self._pause_state(tx.conn).paused:
                return []
            picks = self._pick(tx.conn, unique)
            return self._take(tx, picks) if picks else []

    def _probe(self, conn: Connection, lane: str, limit: int) -> list[int]:
        return list(conn.execute(LANE_PROBE, self.sql.probe_params(lane, limit)).scalars())

    def _pick(
        self, conn: Connection, requests: list[ClaimRequest]
    ) -> list[tuple[ClaimRequest, int]]:
        """Choose a card per agent: own lane, then class lane, then the common lane."""
        picks: list[tuple[ClaimRequest, int]] = []
        waiting: list[ClaimRequest] = []
        stmt, params = self.sql.lanes_with_work([route(r.agent, None) for r in requests])
        own_lanes = set(conn.execute(stmt, params).scalars())
        for request in requests:
            own = route(request.agent, None)
            found = self._probe(conn, own, 1) if own in own_lanes else []
            if found:
                picks.append((request, found[0]))
            else:
                waiting.append(request)
        by_class: dict[str, list[ClaimRequest]] = {}
        anyone: list[ClaimRequest] = []
        for request in waiting:
            if request.agent_class:
                by_class.setdefault(request.agent_class, []).append(request)
            else:
                anyone.append(request)
        for agent_class, members in by_class.items():
            found = self._probe(conn, route(None, agent_class), len(members))
            picks.extend(zip(members, found, strict=False))
            anyone.extend(members[len(found) :])
        anyone = [r for r in anyone if r.take_untargeted]
        if anyone:  # in the requests' order; by identity (``in`` a list compared every field)
            chosen = {id(r) for r in anyone}
            ordered = [r for r in requests if id(r) in chosen]
            found = self._probe(conn, "", len(ordered))
            picks.extend(zip(ordered, found, strict=False))
        return picks

    def _take(self, tx: Tx, picks: Sequence[tuple[ClaimRequest, int]]) -> list[Claim]:
        params = [
            {"b_seq": seq, "b_agent": r.agent, "b_host": r.host, "b_ttl": float(r.lease_ttl)}
            for r, seq in picks
        ]
        if len(params) == 1:  # one statement instead of two: the common single claim
            rows = tx.conn.execute(TAKE_ONE, params[0]).mappings().all()
        else:
            tx.conn.execute(TAKE, params)
            seqs = [seq for _, seq in picks]
            rows = tx.conn.execute(CARDS_BY_SEQ, {"seqs": seqs}).mappings().all()
        by_seq = {row["seq"]: card_from_row(row) for row in rows}
        claims: list[Claim] = []
        for request, seq in picks:
            card = by_seq[seq]
            assert card.lease_expires_at is not None and card.lease_owner == request.agent
            claims.append(
                Claim(card, card.token, request.agent, request.host, card.lease_expires_at)
            )
        self._events(
            tx,
            [
                self.sql.event_row(
                    c.host, c.card.id, EventKind.CLAIMED, c.agent, c.token,
                    f"attempt {c.card.attempts}",
                )
                for c in claims
            ],
        )  # fmt: skip
        tx.changes.append(EventKind.CLAIMED)
        return claims

    # --- lease-holder operations (fenced by the token, and by time where it matters) -------

    def _fenced(
        self,
        tx: Tx,
        card_id: str,
        token: int,
        values: dict[str, Any],
        *,
        action: str,
        live_for: float | None = None,
        owner: str | None = None,
    ) -> RowMapping:
        """Update the card only if it is claimed under ``token`` (and, with ``live_for``,
        its lease has more than that many seconds left; with ``owner``, ``owner`` holds it);
        otherwise refuse, unchanged."""
        stmt = self.sql.fenced(card_id, token, values, live_for=live_for, owner=owner)
        row = tx.conn.execute(stmt).mappings().first()
        if row is not None:
            return row
        raise self._refusal(tx, card_id, token, action, live_for, owner)

    def _refusal(
        self,
        tx: Tx,
        card_id: str,
        token: int,
        action: str,
        live_for: float | None,
        owner: str | None,
    ) -> StaleTokenError:
        """Why the fenced update matched no row: the lease moved on, or it ran out
        (LeaseExpiredError, a StaleTokenError)."""
        current = self._must(tx.conn, card_id)
        if rules.held(current, token) and owner is not None and current["lease_owner"] != owner:
            return StaleTokenError(
                f"card {card_id!r} is leased to {current['lease_owner']}, not {owner};"
                f" cannot {action}"
            )
        if rules.held(current, token):
            assert live_for is not None
            why = rules.lease_refusal(current, token, action, self._now(tx.conn), live_for)
            return LeaseExpiredError(why)
        return StaleTokenError(rules.stale_message(current, token, action))

    def _lease_event(
        self,
        tx: Tx,
        row: RowMapping,
        kind: EventKind,
        token: int,
        detail: str | None = None,
        *,
        announce: bool = True,
    ) -> None:
        """The event of a lease-holder operation, in the name and host of the lease's holder;
        ``announce``: tell the change hook too (the change can make work dispatchable)."""
        agent, host = row["lease_owner"], row["host"]
        self._event(tx, row["id"], kind, agent=agent, token=token, detail=detail, host=host)
        if announce:
            tx.changes.append(kind)

    def begin_delivery(self, card_id: str, token: int, agent: str, margin: float) -> DeliveryGate:
        """May the card's text be typed into ``agent``'s pane now, under ``token``?

        Yes (the card) when it is claimed by ``agent`` under ``token``, not yet delivered,
        and its lease has more than ``margin`` seconds left by the database clock: the
        time the typing may take, so no text lands after the lease could be reclaimed.
        Card, pause flag, the agent's own pause and clock are read in one snapshot.
        """
        if margin < 0:
            raise UsageError(f"delivery margin must be >= 0 seconds, not {margin!r}")
        with self._read() as conn:
            row = self._row(conn, card_id)
            pause = self._pause_state(conn)
            if row is None:
                return DeliveryGate(None, pause, "no such card")
            if not rules.held(row, token) or row["lease_owner"] != agent:
                why = (
                    f"stale delivery: card is {row['status']}, owner {row['lease_owner']},"
                    f" token {row['token']}"
                )
                return DeliveryGate(None, pause, why)
            if row["delivered_at"] is not None:
                return DeliveryGate(None, pause, "already delivered under this token")
            now = self._now(conn)
            if row["lease_expires_at"] <= now + margin:
                why = rules.lease_refusal(row, token, "deliver", now, margin)
                return DeliveryGate(None, pause, why)
            held = self._agent_holds(conn).get(agent)
            return DeliveryGate(card_from_row(row), pause, held=held)

    def mark_delivered(
        self, card_id: str, token: int, agent: str | None = None, *, margin: float = 0.0
    ) -> Card:
        """Record that the card's text reached the agent's pane under this lease.

        Refused (LeaseExpiredError, nothing changed) once the lease has no more than
        ``margin`` seconds left; with ``agent``, also when another agent holds it.
        """
        values = {"delivered_at": db_now(), "delivery_failures": 0}
        with self._write() as tx:
            row = self._fenced(
                tx, card_id, token, values, action="deliver", live_for=margin, owner=agent
            )
            self._lease_event(tx, row, EventKind.DELIVERED, token, announce=False)
            return card_from_row(row)

    def record_delivery(self, card_id: str, token: int, agent: str) -> bool:
        """``mark_delivered`` for the host worker, whose text did reach the pane: True when
        marked under the live lease; False when the lease had moved on or run out meanwhile
        (a quick agent closed its card between verify and this write): the text did reach
        the pane under this token, so the ``delivered`` event is written all the same, with
        why, in the same transaction, and nothing else changes."""
        fence = {"d_tenant": self.tenant, "d_card": card_id, "d_token": token, "d_owner": agent}
        with self._write() as tx:
            row = tx.conn.execute(MARK_DELIVERED, fence).mappings().first()
            if row is not None:
                self._lease_event(tx, row, EventKind.DELIVERED, token, announce=False)
                return True
            refusal = self._refusal(tx, card_id, token, "deliver", 0.0, agent)
            detail = f"recorded after the lease moved on: {refusal.message}"
            self._event(tx, card_id, EventKind.DELIVERED, agent=agent, token=token, detail=detail)
            return False

    def renew(self, card_id: str, token: int, ttl: float) -> Card:
        """Extend a live lease to ``ttl`` seconds from now (database time)."""
        rules.check_ttl(ttl)
        values = {"lease_expires_at": expiry_in(ttl)}
        with self._write() as tx:
            row = self._fenced(tx, card_id, token, values, action="renew", live_for=0.0)
            self._lease_event(tx, row, EventKind.RENEWED, token, f"ttl {ttl:g}s", announce=False)
            return card_from_row(row)

    def renew_working(self, agents: Sequence[str], ttl: float, card_timeout: float) -> list[str]:
        """Extend the live leases that this host's working agents hold; the renewed card ids.

        A real agent can work on one card far longer than a lease: without this its card
        would be reclaimed and typed to a second agent while the first is still on it. The
        host worker calls it for the agents it sees working (``busy`` heartbeat or fresh pane
        output). Only delivered leases of this host with less than half of ``ttl`` left are
        renewed, and only within ``card_timeout`` seconds of the delivery, so an agent that
        hangs while still looking busy gives its card back at most ``card_timeout + ttl``
        after it got it. A lease that has expired is never renewed: it is the reclaim's.
        """
        rules.check_ttl(ttl)
        if not agents:
            return []
        renewed: list[tuple[str, int, str]] = []
        with self._write() as tx:
            now = self._now(tx.conn)
            due = self.sql.renewal_due(self.host, agents, now, ttl, card_timeout)
            for card_id, token, owner in tx.conn.execute(due).all():
                values = {"lease_expires_at": expiry_in(ttl)}
                fenced = self.sql.fenced(card_id, token, values, live_for=0.0)
                if tx.conn.execute(fenced).first() is not None:  # not expired since ``now``
                    renewed.append((card_id, token, owner))
            detail = f"agent working; ttl {ttl:g}s"
            self._events(
                tx,
                [
                    self.sql.event_row(self.host, c, EventKind.RENEWED, o, t, detail)
                    for c, t, o in renewed
                ],
            )
        return [card_id for card_id, _, _ in renewed]

    def complete(
        self, card_id: str, token: int, result: str | None = None, *, owner: str | None = None
    ) -> Card:
        """Mark the card done; its dependents lose one unmet dependency.

        Repeating the completion with the same token is a no-op that returns the card,
        so an agent that runs ``fleet card done`` twice does not fail the second time.
        With ``owner`` (the agent socket), only while ``owner`` holds the lease.
        """
        with self._write() as tx:
            try:
                values = finish(DONE, result=result)
                row = self._fenced(tx, card_id, token, values, action="complete", owner=owner)
            except StaleTokenError:
                current = self._must(tx.conn, card_id)
                same = current["status"] == DONE and current["token"] == token
                if same and owner in (None, current["lease_owner"]):
                    return card_from_row(current)
                raise
            tx.conn.execute(self.sql.release_dependents(card_id))
            self._lease_event(tx, row, EventKind.DONE, token, result)
            return card_from_row(row)

    def fail(self, card_id: str, token: int, reason: str, *, owner: str | None = None) -> Card:
        """The lease holder gives up: the card is failed with ``reason`` (unblock requeues it).
        With ``owner`` (the agent socket), only while ``owner`` holds the lease."""
        reason = rules.clean_reason(reason)
        with self._write() as tx:
            values = finish(FAILED, reason=reason)
            row = self._fenced(tx, card_id, token, values, action="fail", owner=owner)
            self._lease_event(tx, row, EventKind.FAILED, token, reason)
            return card_from_row(row)

    def release(self, card_id: str, token: int, reason: str) -> Card:
        """Give the card back to ready (e.g. paused, pane busy); not counted as an attempt."""
        return self._release(card_id, token, rules.clean_reason(reason), undelivered=False)

    def release_undelivered(self, card_id: str, token: int, error: str) -> Card:
        """Give the card back because its text could not be delivered.

        The card counts these releases since its last delivery or unblock; once they reach
        its ``max_attempts`` it is blocked instead (reason: the count and the last error),
        so a card that can never be typed stops being claimed every tick.
        """
        error = rules.clean_reason(error or "no detail")
        return self._release(card_id, token, f"{DELIVERY_FAILED}: {error}", undelivered=error)

    def _release(self, card_id: str, token: int, reason: str, *, undelivered: str | bool) -> Card:
        with self._write() as tx:
            before = self._must(tx.conn, card_id, lock=True)
            values = give_back()
            kind, detail = EventKind.RELEASED, reason
            if undelivered and rules.held(before, token):
                failures = before["delivery_failures"] + 1
                values["delivery_failures"] = failures
                if failures >= before["max_attempts"]:
                    kind = EventKind.BLOCKED
                    detail = rules.delivery_blocked_reason(
                        failures, before["max_attempts"], str(undelivered)
                    )
                    values.update(status=BLOCKED, reason=detail, delivery_failures=0)
            row = self._fenced(tx, card_id, token, values, action="release")
            self._lease_event(tx, before, kind, token, detail)  # in the name of who held it
            return card_from_row(row)
