"""The chat connector at work on the orchestrator's host (``fleet connector run``).

One adapter (a ``ChatAdapter``) brings messages in; each one from an allowed sender is
stored ``queued`` (``chat_messages``) before anything else happens, everyone else is
refused and logged. One turn at a time, the oldest queued message is typed into the
answering agent's pane through the verified delivery path (``workers.delivery``): a busy
or not-reading agent refuses it and it stays queued, nothing typed. Once accepted it is
``delivered`` with its turn id (the delivery's nonce) and the hash of exactly what was
typed; its reply is then read from the runtime's own record of that turn
(``workers.turn_replies``), kept in the store, sent threaded to the message, and the
message is ``answered``. A restart resumes every queued and delivered message and never
sends an answered one again. Beside them, rooms with ``notices: true`` are told of
the fleet's failures, dead agents, budgets and pauses (``fleet_queue.connector.notices``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from fleet_queue.connector.base import (
    ChatAdapter,
    ChatMessage,
    ChatRecord,
    ChatRefusedError,
    ChatState,
)
from fleet_queue.connector.config import ChatConfig, answering_agent
from fleet_queue.connector.notices import (
    NOTICE_BATCH,
    NOTICE_EVERY,
    NOTICE_GAP,
    NOTICE_KINDS,
    NoticeCursors,
    compose,
    cursor_path,
    due,
    notice_id,
)
from fleet_queue.errors import AgentBusyError, DeliveryError, FleetError
from fleet_queue.roster import Roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from workers.acceptance import digest
from workers.delivery import Deliverer
from workers.runtimes import LaunchPlan, launch_plan
from workers.turn_replies import turn_reply

log = logging.getLogger("fleet.connector")

LOOK_EVERY = 0.2
"""Seconds between two looks for a turn's reply or a free agent when nothing wakes us."""
PROMPT_SLACK = 300.0
"""A turn's prompt is looked for from this long before its message was stored: the
store's clock and the runtime's may differ a little (the prompt is found by its hash)."""
SEND_PAUSE_MAX = 30.0
"""Longest wait between two tries of a reply the network failed (doubling from 1 s)."""


@dataclass
class Sending:
    """A reply the network failed for a passing reason: since when, and the next try."""

    first: float
    next_try: float
    pause: float = 1.0


class ConnectorService:
    def __init__(
        self,
        settings: Settings,
        roster: Roster,
        config: ChatConfig,
        adapter: ChatAdapter,
        store: CardStore,
        *,
        deliverer: Deliverer | None = None,
        look_every: float = LOOK_EVERY,
        notice_every: float = NOTICE_EVERY,
        notice_gap: float = NOTICE_GAP,
    ) -> None:
        self.settings = settings
        self.config = config
        self.adapter = adapter
        self.store = store
        self.agent = answering_agent(roster, config)
        self.plan: LaunchPlan = launch_plan(settings, roster, roster.agent(self.agent))
        self.deliverer = deliverer or Deliverer(settings, roster, trust_native_idle=True)
        self.look_every = look_every
        self._wake = asyncio.Event()
        self._retry_at = 0.0
        self.notice_every = notice_every
        self.notice_gap = notice_gap
        self._noticed: dict[str, float] = {}
        self._sending: dict[int, Sending] = {}
        """Replies failing for a passing reason, by record id (since this start)."""
        self._looked: dict[str, int] = {}

    async def on_message(self, message: ChatMessage) -> None:
        if not self.config.allowed(message.room, message.sender):
            log.warning(
                "refused a %s message from %s in %s (not on the room's allow-list)",
                message.network, message.sender, message.room,
            )  # fmt: skip
            return
        if not message.text.strip():
            return
        record = await asyncio.to_thread(self.store.chat_receive, message, self.agent)
        if record is not None:
            log.info("queued chat message %d from %s", record.id, message.sender)
            self._wake.set()

    async def serve(self) -> None:
        """Until cancelled: the adapter's loop, the pump and the notices side by side."""
        tasks = {
            asyncio.create_task(self.adapter.run(self.on_message)),
            asyncio.create_task(self.pump_forever()),
        }
        if self.config.notice_rooms():
            tasks.add(asyncio.create_task(self.notices_forever()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # an adapter or store failure ends the service, loudly
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.adapter.close()
            self.deliverer.close()

    async def pump_forever(self) -> None:
        while True:
            await self.pump()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.look_every)
            self._wake.clear()

    async def pump(self) -> None:
        """Answer what has its reply; then, with no turn open, type the oldest queued."""
        records = await asyncio.to_thread(self.store.chat_open, self.adapter.network)
        waiting = False
        for record in records:
            if record.state == ChatState.DELIVERED:
                waiting |= not await self._answer(record)
        queued = [r for r in records if r.state == ChatState.QUEUED]
        if queued and not waiting and time.monotonic() >= self._retry_at:
            await self._deliver(queued[0])

    async def _deliver(self, record: ChatRecord) -> None:
        source = f"{record.network} {record.sender}"
        try:
            receipt = await asyncio.to_thread(
                self.deliverer.deliver, self.agent, record.text, source=source
            )
        except AgentBusyError as exc:
            log.debug("chat message %d waits: %s", record.id, exc.message)
            return
        except DeliveryError as exc:
            if exc.message in ("empty message",):
                await self._fail(record, f"not delivered: {exc.message}")
                return
            self._retry_at = time.monotonic() + self.settings.heartbeat_interval
            log.warning("chat message %d not delivered yet: %s", record.id, exc.message)
            return
        await asyncio.to_thread(
            self.store.chat_delivered, record.id, receipt.nonce, digest(receipt.text)
        )
        log.info("chat message %d delivered to %s (turn %s)", record.id, self.agent, receipt.nonce)

    async def _answer(self, record: ChatRecord) -> bool:
        """Send the turn's reply once it is recorded; False while the turn is open."""
        text = record.reply
        if text is None:
            assert record.prompt_sha is not None
            since = datetime.fromtimestamp(record.created_at - PROMPT_SLACK, UTC)
            found = await asyncio.to_thread(turn_reply, self.plan, record.prompt_sha, since)
            if found is None:
                waited = time.time() - (record.delivered_at or record.created_at)
                if waited > self.settings.chat_reply_timeout:
                    await self._fail(record, f"no reply within {waited:.0f}s")
                    return True
                return False
            if found.failed:
                await self._fail(record, found.text)
                return True
            text = found.text
            await asyncio.to_thread(self.store.chat_reply, record.id, text)
        sending = self._sending.get(record.id)
        if sending is not None and time.monotonic() < sending.next_try:
            return False
        try:
            await self.adapter.reply(record, text)
        except ChatRefusedError as exc:
            self._sending.pop(record.id, None)
            await self._fail(record, f"the reply was refused: {exc.message}", tell=False)
            return True
        except FleetError as exc:
            return await self._send_failed(record, exc.message)
        self._sending.pop(record.id, None)
        await asyncio.to_thread(self.store.chat_answered, record.id)
        log.info("chat message %d answered (turn %s)", record.id, record.turn_id)
        return True

    async def _send_failed(self, record: ChatRecord, why: str) -> bool:
        """A reply the network failed for a passing reason: tried again, backing off, for
        ``chat_reply_retry`` seconds from its first failure, then its message is failed.
        Logged at the first failure and at the end, not at each try."""
        now = time.monotonic()
        sending = self._sending.get(record.id)
        if sending is None:
            sending = self._sending[record.id] = Sending(first=now, next_try=now)
            log.warning(
                "reply to chat message %d not sent (%s); tried again for up to %gs",
                record.id, why, self.settings.chat_reply_retry,
            )  # fmt: skip
        if now - sending.first >= self.settings.chat_reply_retry:
            del self._sending[record.id]
            await self._fail(
                record, f"the reply could not be sent for {now - sending.first:.0f}s: {why}"
            )
            return True
        sending.next_try = now + sending.pause
        sending.pause = min(sending.pause * 2, SEND_PAUSE_MAX)
        return False

    async def _fail(self, record: ChatRecord, reason: str, *, tell: bool = True) -> None:
        """Fail the message; the room is told why unless it refused the reply itself."""
        if await asyncio.to_thread(self.store.chat_failed, record.id, reason):
            log.warning("chat message %d failed: %s", record.id, reason)
            if tell:
                with contextlib.suppress(FleetError):
                    await self.adapter.reply(record, f"(fleet: {reason})")

    async def notices_forever(self) -> None:
        cursors = NoticeCursors(cursor_path(self.settings.run_dir, self.adapter.network))
        while True:
            for room in self.config.notice_rooms():
                await self.notify(room, cursors)
            await asyncio.sleep(self.notice_every)

    async def notify(self, room: str, cursors: NoticeCursors) -> None:
        """Tell ``room`` what happened since its cursor, in one notice, if its gap is over;
        the cursor moves only once the notice was sent (a room new to it starts now). A
        notice that was in flight (not known sent) is told again up to the same event,
        under the same id, before anything newer."""
        after = cursors.get(room)
        if after is None:
            newest = await asyncio.to_thread(self.store.last_event_id)
            await asyncio.to_thread(cursors.set, room, newest)
            return
        now = time.monotonic()
        if not due(self._noticed.get(room), now, self.notice_gap):
            return
        looked = self._looked.get(room)
        self._looked[room] = await asyncio.to_thread(self.store.last_event_id)
        found = await asyncio.to_thread(self.store.events_after, after, NOTICE_KINDS, NOTICE_BATCH)
        pending = cursors.in_flight(room)
        if pending is not None:
            found = [event for event in found if event.id <= pending]
        text = compose(found)
        if text is not None:
            self._noticed[room] = now  # a failed send is tried again after the gap too
            last = found[-1]
            if pending != last.id:
                await asyncio.to_thread(cursors.hold, room, last.id)
            try:
                await self.adapter.notice(room, text, notice_id(room, last))
            except ChatRefusedError as exc:  # the room is gone or shut to the bot
                log.error("notice to %s refused, events up to %d not told there: %s",
                          room, last.id, exc.message)  # fmt: skip
            except FleetError as exc:
                log.warning("notice to %s not sent yet: %s", room, exc.message)
                return
            else:
                log.info("notice to %s: %d events up to %d", room, len(found), last.id)
        if found:
            await asyncio.to_thread(cursors.set, room, found[-1].id)
        elif looked is not None and looked > after:
            # No news up to the newest event of the look before (a second ago, long
            # committed): the next read starts there, not at the last notice, so a quiet
            # busy fleet's reads stay short.
            await asyncio.to_thread(cursors.set, room, looked)
