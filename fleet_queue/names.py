"""One rule for every name that reaches tmux, a path, a queue, a Redis key or a shell.

A name typed into a roster, a setting or a card ends up as a tmux socket file under
``run/tmux-<uid>/``, a tmux session, a Celery queue, a Redis key, or a word of the
``fleet card done <id>`` command an agent runs in its shell. So each kind has one
documented charset (docs/security.md), checked where the name comes in:

=================  =========================================  ===========================
kind               charset                                    where it is used
=================  =========================================  ===========================
agent              ``[A-Za-z0-9][A-Za-z0-9_-]{0,62}``          tmux session, queue routing
tenant             ``[A-Za-z0-9][A-Za-z0-9_-]{0,62}``          queue names, Redis keys
tmux socket        ``[A-Za-z0-9][A-Za-z0-9_-]{0,62}``          a file name (``-L``)
holder session     ``_?[A-Za-z0-9][A-Za-z0-9_-]{0,62}``        tmux session (``_holder``)
host               ``[A-Za-z0-9][A-Za-z0-9_.-]{0,252}``,       queue and node names
                   no ``..``
card id            ``[A-Za-z0-9][A-Za-z0-9_.:@%+=,-]{0,199}``  typed into a shell command
=================  =========================================  ===========================

None may start with ``-`` (an option to tmux or ``fleet``), hold ``/`` (a path) or
whitespace; a card id is made only of characters a POSIX shell never interprets, so
``fleet card done <id>`` is safe even unquoted (it is quoted anyway).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from fleet_queue.errors import UsageError

_WORD = r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}"

PATTERNS: dict[str, re.Pattern[str]] = {
    "agent": re.compile(_WORD),
    "tenant": re.compile(_WORD),
    "tmux socket": re.compile(_WORD),
    "holder session": re.compile(rf"_?{_WORD}"),
    "host": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}"),
    "card id": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@%+=,-]{0,199}"),
}
"""Each kind's charset; a name must match it whole (``fullmatch``)."""


def name_problem(kind: str, value: object) -> str | None:
    """Why ``value`` is not a valid ``kind`` name, in one line; None when it is."""
    pattern = PATTERNS[kind]
    if not isinstance(value, str):
        return f"{kind} must be a string, not {type(value).__name__}"
    if not pattern.fullmatch(value):
        shown = value if len(value) <= 80 else f"{value[:80]}..."
        return f"{kind} {shown!r} must match {pattern.pattern} (see docs/security.md)"
    if ".." in value:
        return f"{kind} {value!r} must not contain '..'"
    return None


def check_name(kind: str, value: object) -> str:
    """``value`` when it is a valid ``kind`` name; ``UsageError`` (one line) otherwise."""
    problem = name_problem(kind, value)
    if problem:
        raise UsageError(problem)
    assert isinstance(value, str)
    return value


def _field(kind: str) -> AfterValidator:
    """A pydantic validator for ``kind``: a bad name is a one-line validation error."""

    def check(value: str) -> str:
        problem = name_problem(kind, value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


AgentName = Annotated[str, _field("agent")]
TenantName = Annotated[str, _field("tenant")]
SocketName = Annotated[str, _field("tmux socket")]
HolderName = Annotated[str, _field("holder session")]
HostName = Annotated[str, _field("host")]
"""Field types for pydantic models (the roster, settings): the rule above, checked on load."""
