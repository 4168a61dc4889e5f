"""Card and message text is typed into terminals: strip what a terminal would act on.

Control bytes other than newline and tab are removed (ESC, BEL, backspace, the
C1 range, DEL); CRLF and lone CR become newline. A bracketed-paste end marker
is an ESC sequence, so it cannot survive either. What remains is typed
literally, never interpreted.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def sanitize_text(text: str) -> str:
    """The text with line endings normalised and control characters removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def control_characters(text: str) -> list[str]:
    """The control characters ``sanitize_text`` would remove, as ``\\xNN`` names."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return sorted({f"\\x{ord(ch):02x}" for ch in _CONTROL.findall(text)})
