"""Pause: one flag in the store for the fleet, plus ``run/PAUSED`` on a host.

The store flag stops the supervisor from dispatching anywhere; the file stops
the host worker of that host from typing, even when the store cannot be
reached. Both are checked before every dispatch and every delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_queue.private import write_private
from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from fleet_queue.cards import PauseState
    from fleet_queue.store import CardStore

PAUSED_FILE = "PAUSED"


def paused_file(settings: Settings) -> Path:
    return settings.run_dir / PAUSED_FILE


def host_paused(settings: Settings) -> bool:
    return paused_file(settings).exists()


def pause_fleet(store: CardStore, settings: Settings, reason: str, by: str) -> None:
    store.pause(reason, by)
    path = paused_file(settings)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    write_private(path, f"at={stamp} by={by} reason={reason}\n")


def resume_fleet(store: CardStore, settings: Settings, by: str) -> None:
    store.resume(by)
    paused_file(settings).unlink(missing_ok=True)


def dispatch_allowed(
    store: CardStore, settings: Settings, state: PauseState | None = None
) -> tuple[bool, str]:
    """(allowed, why not): the gate every delivery passes before typing.

    ``state`` is the fleet's pause flag when the caller just read it (in the same
    read as the card); otherwise it is read here.
    """
    if host_paused(settings):
        return False, f"host {settings.host} is paused ({paused_file(settings)})"
    if state is None:
        state = store.pause_state()
    if state.paused:
        return False, f"fleet paused by {state.by}: {state.reason}"
    return True, ""
