"""Which fleet events a notice room hears of, in what words, and how a burst is told.

The connector sends what ``compose`` makes; a person reads it in a chat client, so each
event is one line that names the card or agent and says why, and a burst (fifty cards
failing in one tick) is one line that counts it, not fifty messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from fleet_queue.cards import Event, EventKind
from fleet_queue.connector.base import ChatAdapter, ChatSendError
from fleet_queue.connector.config import ChatConfig, RoomConfig
from fleet_queue.connector.notices import (
    NOTICE_KINDS,
    SHOWN_EACH,
    NoticeCursors,
    compose,
    cursor_path,
    due,
    notice_id,
    notice_line,
)
from fleet_queue.roster import parse_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore

AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ROOM = "#ops:localhost"


def event(
    n: int, kind: EventKind, card: str | None = None, agent: str | None = None, detail: str = ""
) -> Event:
    return Event(n, "t1", "h1", card, kind, agent, None, detail or None, AT)


WARN, SPENT = "fleet day: $8.00 of $10.00", "agent a0 day: $10.10 of $10.00"


def test_each_kind_a_person_needs_is_one_line_that_names_who_and_why() -> None:
    lines = {
        kind: notice_line(e)
        for kind, e in {
            EventKind.FAILED: event(1, EventKind.FAILED, "C-1", "a0", "tests red"),
            EventKind.BLOCKED: event(2, EventKind.BLOCKED, "C-2", "a1", "needs a key"),
            EventKind.RESTARTED: event(3, EventKind.RESTARTED, None, "a2", "pane was dead"),
            EventKind.BROKEN: event(4, EventKind.BROKEN, None, "a3", "died 6 times in 600s"),
            EventKind.BUDGET_WARNING: event(5, EventKind.BUDGET_WARNING, None, None, WARN),
            EventKind.OVER_BUDGET: event(6, EventKind.OVER_BUDGET, None, "a0", SPENT),
            EventKind.PAUSED: event(7, EventKind.PAUSED, None, "alice", "deploy freeze"),
            EventKind.RESUMED: event(8, EventKind.RESUMED, None, "alice"),
        }.items()
    }  # fmt: skip
    assert set(lines) == set(NOTICE_KINDS)
    assert lines[EventKind.FAILED] == "card C-1 failed (a0): tests red"
    assert lines[EventKind.BLOCKED] == "card C-2 blocked (a1): needs a key"
    assert lines[EventKind.RESTARTED] == "agent a2's pane died, restarted: pane was dead"
    failed = event(9, EventKind.RESTARTED, None, "a2", "restart 2 failed: no such command")
    assert notice_line(failed) == (
        "agent a2's pane died, its restart failed: restart 2 failed: no such command"
    )
    assert lines[EventKind.BROKEN] == "agent a3 is broken: died 6 times in 600s"
    assert lines[EventKind.BUDGET_WARNING] == "budget warning: fleet day: $8.00 of $10.00"
    assert "budget spent: agent a0 day: $10.10 of $10.00" in str(lines[EventKind.OVER_BUDGET])
    assert str(lines[EventKind.PAUSED]).startswith("fleet paused by alice: deploy freeze")
    assert lines[EventKind.RESUMED] == "fleet resumed by alice"
    for line in lines.values():
        assert line is not None and "\n" not in line


def test_events_that_are_not_news_make_no_notice() -> None:
    quiet = [event(1, EventKind.CLAIMED, "C-1", "a0"), event(2, EventKind.DONE, "C-1", "a0")]
    assert compose(quiet) is None
    assert notice_line(quiet[0]) is None
    assert compose([]) is None


def test_a_burst_of_failures_is_one_counting_line_and_other_kinds_keep_theirs() -> None:
    burst = [event(i, EventKind.FAILED, f"C-{i}", "a0", f"reason {i}") for i in range(1, 51)]
    paused = event(51, EventKind.PAUSED, None, "alice", "too many failures")
    text = compose([*burst, paused])
    assert text is not None
    lines = text.splitlines()
    assert len(lines) == 2, text
    assert lines[0].startswith("fleet: 50 cards failed: C-1, C-2, C-3, C-4, C-5 and 45 more")
    assert lines[0].endswith("the latest: card C-50 failed (a0): reason 50")
    assert lines[1].startswith("fleet: fleet paused by alice: too many failures")


def test_a_few_events_of_a_kind_are_told_one_by_one_in_order() -> None:
    few = [event(i, EventKind.BLOCKED, f"C-{i}", None, "why") for i in range(SHOWN_EACH)]
    text = compose(few)
    assert text is not None
    assert text.splitlines() == [f"fleet: card C-{i} blocked: why" for i in range(SHOWN_EACH)]


def test_one_agent_restarting_again_and_again_is_counted_by_name() -> None:
    restarts = [event(i, EventKind.RESTARTED, None, "a7", f"restart {i}") for i in range(5)]
    text = compose(restarts)
    assert text is not None
    assert text.startswith("fleet: 5 agent restarts after a dead pane: a7 (x5);")


def test_a_long_or_many_line_reason_stays_one_short_line() -> None:
    line = notice_line(event(1, EventKind.FAILED, "C-1", None, "boom\n" * 200))
    assert line is not None and "\n" not in line and len(line) < 260


def test_a_room_hears_at_most_one_notice_per_gap() -> None:
    assert due(None, 100.0, 5.0)
    assert not due(98.0, 100.0, 5.0)
    assert due(95.0, 100.0, 5.0)


def test_cursors_are_kept_private_per_room_and_survive_a_restart(tmp_path: Path) -> None:
    path = cursor_path(tmp_path / "run", "matrix")
    cursors = NoticeCursors(path)
    assert cursors.get("!a:x") is None  # a new room starts at the newest event
    cursors.set("!a:x", 41)
    cursors.set("#b:x", 7)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = NoticeCursors(path)
    assert (again.get("!a:x"), again.get("#b:x")) == (41, 7)
    path.write_text("{not json")
    assert NoticeCursors(path).get("!a:x") is None  # unreadable: start at the newest again


class NoticeRoom:
    """Where the service's notices land (the network's side of ``ChatAdapter.notice``);
    ``refusing`` makes the next send fail as a network would."""

    network = "matrix"

    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []
        self.ids: list[str] = []
        """The notice id of every try, refused ones included."""
        self.refusing = False

    async def notice(self, room: str, text: str, notice_id: str) -> None:
        self.ids.append(notice_id)
        if self.refusing:
            self.refusing = False
            raise ChatSendError("matrix: sending failed: 502")
        self.told.append((room, text))


def test_a_notice_id_is_the_same_on_every_try_and_differs_by_room_event_and_store() -> None:
    last = event(7, EventKind.FAILED, "C-1")
    same = notice_id("!a:x", last)
    assert same == notice_id("!a:x", event(7, EventKind.FAILED, "C-1", detail="other words"))
    assert len(same) == 20 and same.isalnum()
    assert same != notice_id("!b:x", last)
    assert same != notice_id("!a:x", event(8, EventKind.FAILED, "C-1"))
    fresh_store = Event(
        7, "t1", "h1", "C-1", EventKind.FAILED, None, None, None, AT.replace(hour=13)
    )
    assert same != notice_id("!a:x", fresh_store)


def test_the_service_tells_a_room_once_after_a_refused_send_and_across_a_restart(
    settings: Settings,
) -> None:
    from workers.connector_service import ConnectorService

    orch = {"name": "orch", "runtime": "stub", "class": "orchestrator"}
    roster = parse_roster({"preset": "minimal", "agents": [orch]})
    config = ChatConfig(kind="matrix", rooms={ROOM: RoomConfig(notices=True)})
    path = cursor_path(settings.run_dir, "matrix")
    room = NoticeRoom()
    gap = 0.2
    store = CardStore.from_settings(settings)

    def service() -> ConnectorService:
        made = ConnectorService(
            settings, roster, config, cast(ChatAdapter, room), store, notice_gap=gap
        )
        made.deliverer.close()  # nothing is typed here
        return made

    async def scenario() -> None:
        first = service()
        cursors = NoticeCursors(path)
        store.record_event("OLD-1", EventKind.FAILED, detail="history")
        await first.notify(ROOM, cursors)  # a new room starts at the newest event
        assert cursors.get(ROOM) == store.last_event_id()
        store.record_event("C-1", EventKind.FAILED, agent="a0", detail="tests red")
        room.refusing = True
        await first.notify(ROOM, cursors)  # refused: the cursor stays
        assert room.told == [] and cursors.get(ROOM) != store.last_event_id()
        store.record_event("C-9", EventKind.BLOCKED, detail="came after the refused try")
        await first.notify(ROOM, cursors)  # within the gap: not yet
        assert room.told == []
        await asyncio.sleep(gap)
        await service().notify(ROOM, NoticeCursors(path))  # restarted meanwhile
        # The notice in flight is told again as it was, under the same id (a network
        # that got the first try drops this one); what came after waits for the next.
        assert room.told == [(ROOM, "fleet: card C-1 failed (a0): tests red")]
        assert room.ids[0] == room.ids[1]
        await asyncio.sleep(gap)
        cursors = NoticeCursors(path)
        await first.notify(ROOM, cursors)
        assert room.told[1:] == [(ROOM, "fleet: card C-9 blocked: came after the refused try")]
        assert room.ids[2] != room.ids[1]
        assert NoticeCursors(path).get(ROOM) == store.last_event_id()
        assert NoticeCursors(path).in_flight(ROOM) is None
        store.record_event("C-1", EventKind.DROPPED)  # not news
        quiet = store.last_event_id()
        for _ in range(2):  # the look after a quiet one starts past it
            await asyncio.sleep(gap)
            await first.notify(ROOM, cursors)
        assert cursors.get(ROOM) == quiet and len(room.told) == 2
        await asyncio.sleep(gap)
        again = service()  # a restart: the kept cursor, nothing told twice
        await again.notify(ROOM, NoticeCursors(path))
        assert len(room.told) == 2
        store.record_event("C-2", EventKind.BLOCKED, detail="needs a key")
        await again.notify(ROOM, NoticeCursors(path))
        assert room.told[2:] == [(ROOM, "fleet: card C-2 blocked: needs a key")]

    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # see test_matrix_adapter.py
            pool.submit(asyncio.run, scenario()).result()
    finally:
        store.close()
