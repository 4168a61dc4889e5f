"""A raw-mode program with bracketed paste, like an agent TUI: it edits its own input
line, a paste is text (newlines and tabs kept), Enter outside a paste submits. Each
submitted message goes to argv[1] as hex. LAG=S: it reads at once but draws S seconds
late (a TUI slow to redraw: the screen shows the text after verify gave up)."""

import os
import queue
import sys
import threading
import time
import tty

LAG = float(os.environ.get("LAG", "0"))
screen: queue.Queue[tuple[float, bytes]] = queue.Queue()


def draw() -> None:
    while True:
        due, data = screen.get()
        time.sleep(max(due - time.monotonic(), 0))
        os.write(1, data)


def show(data: bytes) -> None:
    screen.put((time.monotonic() + LAG, data))


threading.Thread(target=draw, daemon=True).start()

START, END = b"\x1b[200~", b"\x1b[201~"
tty.setraw(0)
show(b"\x1b[?2004hraw> ")
draft = bytearray()
pending = b""
in_paste = False
with open(sys.argv[1], "a", encoding="ascii") as out:
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        pending += data
        echo = bytearray()
        while pending:
            if pending.startswith(START) or pending.startswith(END):
                in_paste = pending.startswith(START)
                pending = pending[len(START) :]
                continue
            if pending[:1] == b"\x1b" and len(pending) < len(START):
                break  # the rest of a marker comes with the next read
            byte, pending = pending[0], pending[1:]
            if byte == 13 and not in_paste:
                out.write(bytes(draft).hex() + "\n")
                out.flush()
                draft.clear()
                echo += b"\r\nraw> "
            else:
                char = b"\n" if byte == 13 else bytes([byte])
                draft += char
                echo += b"\r\n" if char == b"\n" else char
        show(bytes(echo))
