"""Canonical mode, waits in select() on the terminal for HOLD seconds without reading
(a program that looks like it is waiting for input and takes nothing), then reads
lines into argv[1] as hex: text left in the terminal would arrive then."""

import os
import select
import sys
import time

until = time.monotonic() + float(os.environ.get("HOLD", "3"))
while (left := until - time.monotonic()) > 0:
    select.select([0], [], [], left)
    if select.select([0], [], [], 0)[0]:
        time.sleep(0.01)  # input is there and stays unread: do not spin
with open(sys.argv[1], "a", encoding="ascii") as out:
    for line in sys.stdin:
        out.write(line.rstrip("\n").encode("utf-8").hex() + "\n")
        out.flush()
