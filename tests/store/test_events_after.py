"""The chat notices' read: events of some kinds after a cursor, oldest first, bounded."""

from __future__ import annotations

from fleet_queue.cards import EventKind
from fleet_queue.store import CardStore


def test_events_after_a_cursor_read_forward_in_order_and_only_the_kinds_asked(
    store: CardStore,
) -> None:
    assert store.last_event_id() == 0
    for i in range(5):
        store.record_event(f"C-{i}", EventKind.FAILED, detail=f"r{i}")
        store.record_event(f"C-{i}", EventKind.DROPPED)
    newest = store.last_event_id()
    found = store.events_after(0, [EventKind.FAILED], limit=3)
    assert [e.detail for e in found] == ["r0", "r1", "r2"]  # the oldest, not the newest
    rest = store.events_after(found[-1].id, [EventKind.FAILED])
    assert [e.detail for e in rest] == ["r3", "r4"]
    assert store.events_after(newest, [EventKind.FAILED]) == []
    assert max(e.id for e in rest) < newest  # the last event was a DROPPED one
