from __future__ import annotations

from fleet_queue.sanitize import control_characters, sanitize_text


def test_keeps_newline_tab_and_unicode() -> None:
    text = "line one\n\tindented — ünïcødé 🚀;\nlast;"
    assert sanitize_text(text) == text
    assert control_characters(text) == []


def test_strips_escape_sequences_and_paste_markers() -> None:
    hostile = "a\x1b[201~b\x1b]0;title\x07c\x08d\x7fe\x9bf\r\ng\rh\x00"
    assert sanitize_text(hostile) == "a[201~b]0;titlecdef\ng\nh"
    assert control_characters(hostile) == ["\\x00", "\\x07", "\\x08", "\\x1b", "\\x7f", "\\x9b"]
