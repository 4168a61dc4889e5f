"""Card and message text is typed into terminals: strip what a terminal would act on.

Control bytes other than newline and tab are removed (ESC, BEL, backspace, the
C1 range, DEL); CRLF and lone CR become newline. A bracketed-paste end marker
is an ESC sequence, so it cannot survive either. What remains is typed
literally, never interpreted.

Invisible characters are removed too, so what a person reads in a card is what the
agent receives (the "Trojan Source" and hidden-prompt tricks):

- bidi controls that reorder what is shown: U+202A-U+202E (embeddings, overrides),
  U+2066-U+2069 (isolates), U+200E/U+200F (marks), U+061C;
- zero-width characters: U+200B (space), U+2060 (word joiner), U+FEFF (BOM), U+180E;
- Unicode tag characters U+E0000-U+E007F (they spell invisible ASCII a model reads);
- **the one exception**: U+200C (ZWNJ) and U+200D (ZWJ) are kept between two non-ASCII
  characters, where they join emoji sequences and shape Persian and Indic words;
  anywhere else (beside ASCII, at an edge) they are removed.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
_INVISIBLE = re.compile(
    "[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b\u2060\ufeff\u180e"
    "\U000e0000-\U000e007f]"
    "|(?<![^\x00-\x7f])[\u200c\u200d]|[\u200c\u200d](?![^\x00-\x7f])"
)
"""Invisible characters; a joiner survives only with a non-ASCII character on each side."""


def sanitize_text(text: str) -> str:
    """The text with line endings normalised and control characters removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _INVISIBLE.sub("", _CONTROL.sub("", text))


def control_characters(text: str) -> list[str]:
    """The control characters ``sanitize_text`` would remove, as ``\\xNN`` names."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return sorted({f"\\x{ord(ch):02x}" for ch in _CONTROL.findall(text)})
