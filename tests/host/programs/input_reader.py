"""A Python ``input()`` loop (canonical mode): each line read goes to argv[1] as hex."""

import sys

with open(sys.argv[1], "a", encoding="ascii") as out:
    while True:
        try:
            line = input("input> ")
        except EOFError:
            break
        out.write(line.encode("utf-8", "surrogateescape").hex() + "\n")
        out.flush()
