"""``workers.pane_stream.TmuxTerminal``, what the console's terminal view is fed from, on a
real tmux server: colours and cursor come through, size is the pane's own, and looking
never resizes the agent's window; names outside this host's roster reach no pane."""

from __future__ import annotations

import pytest

from fleet_queue.console.terminal import PaneFrame
from fleet_queue.errors import UsageError
from fleet_queue.roster import parse_roster
from fleet_queue.settings import Settings
from tests.support.poll import wait_until
from workers.pane_stream import RAW_CHUNK, TmuxTerminal
from workers.tmux import TmuxServer, exact, pane_target


def test_frame_keeps_colours_cursor_and_the_window_size(settings: Settings) -> None:
    agent = {"name": "c1", "runtime": "stub", "class": "implementer"}
    roster = parse_roster({"version": 1, "preset": "minimal", "agents": [agent]}, "test roster")
    server = TmuxServer.for_fleet(settings, roster)
    server.ensure_started()
    script = r"printf '\033[31mRED\033[0m plain\n\033[1;44mbold on blue\033[0m\nab'; sleep 600"
    server.run("new-session", "-d", "-s", "c1", "-x", "90", "-y", "20", "sh", "-c", script)
    terminal = TmuxTerminal(settings, roster)
    try:
        frame = wait_until(
            lambda: (f := terminal.frame("c1")) is not None and "ab" in "".join(f.lines) and f,
            timeout=10, what="the printed lines in the frame",
        )  # fmt: skip
        assert isinstance(frame, PaneFrame)
        assert (frame.width, frame.height) == (90, 20) and len(frame.lines) == 20
        assert frame.lines[0].startswith("\x1b[31mRED\x1b[39m plain")
        assert "\x1b[1m" in frame.lines[1] and "\x1b[44m" in frame.lines[1]
        assert all(line.endswith("\x1b[0m") for line in frame.lines)  # no colour runs on
        assert (frame.cursor_x, frame.cursor_y) == (2, 2) and not frame.dead
        for _ in range(20):
            terminal.frame("c1")
        size = server.run("display-message", "-p", "-t", pane_target("c1"), "#{window_width}")
        assert size == ["90"], "looking must not resize the agent's window"
        with pytest.raises(UsageError, match="no agent 'other' on host testhost"):
            terminal.frame("other")
        server.run("kill-session", "-t", exact("c1"))
        assert terminal.frame("c1") is None
    finally:
        terminal.close()


def test_raw_keys_arrive_as_typed(settings: Settings) -> None:
    """Take control's path: control bytes stay bytes, a tmux key name is only text, and
    a paste longer than one ``send-keys`` command arrives whole and in order."""
    agent = {"name": "r1", "runtime": "stub", "class": "implementer"}
    roster = parse_roster({"version": 1, "preset": "minimal", "agents": [agent]}, "test roster")
    server = TmuxServer.for_fleet(settings, roster)
    server.ensure_started()
    server.run("new-session", "-d", "-s", "r1", "-x", "200", "-y", "20", "cat", "-v")
    terminal = TmuxTerminal(settings, roster)
    long = "x" * (RAW_CHUNK + 10) + "END"
    try:
        terminal.type_raw("r1", "hi\x01 Enter C-c é\r" + long + "\r")

        def screen() -> str:
            return "\n".join(server.run("capture-pane", "-p", "-J", "-t", pane_target("r1")))

        wait_until(lambda: "END" in screen(), timeout=10, what="the keys")
        shown = screen()
        assert "hi^A Enter C-c M-CM-)" in shown  # cat -v shows 0x01 and UTF-8 as they came
        assert long in shown.replace("\n", "")
        with pytest.raises(UsageError, match="no agent 'other'"):
            terminal.type_raw("other", "x")
    finally:
        terminal.close()
        server.run("kill-session", "-t", exact("r1"))
