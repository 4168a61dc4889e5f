"""A pane program that echoes what it is typed but never submits: Enter is ignored,
so everything stays a draft on the input line (what verify must reject)."""

import os
import tty

tty.setraw(0)
os.write(1, b"\x1b[?2004hdraft> ")
while True:
    data = os.read(0, 65536)
    if not data:
        break
    data = data.replace(b"\x1b[200~", b"").replace(b"\x1b[201~", b"")
    os.write(1, bytes(b for b in data if b not in (10, 13)))
