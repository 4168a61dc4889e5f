"""A prompt_toolkit ``PromptSession`` loop: each accepted text goes to argv[1] as hex."""

import sys

from prompt_toolkit import PromptSession

session: PromptSession[str] = PromptSession()
with open(sys.argv[1], "a", encoding="ascii") as out:
    while True:
        try:
            text = session.prompt("ptk> ")
        except EOFError:
            break
        out.write(text.encode("utf-8").hex() + "\n")
        out.flush()
