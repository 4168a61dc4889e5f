"""One exception base for fleet-queue, grouped by layer.

The docstring of each class is its default message; the CLI turns any
``FleetError`` into one line on stderr and the class's ``exit_code``.
"""

from __future__ import annotations


class FleetError(Exception):
    """fleet-queue failed."""

    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class UsageError(FleetError):
    """Bad input."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration is invalid."""


class RosterError(UsageError):
    """The roster is invalid."""


class NotFoundError(FleetError):
    """No such thing."""

    exit_code = 3


class StoreError(FleetError):
    """The card store refused the operation."""


class ConflictError(StoreError):
    """The operation conflicts with the card's current state."""

    exit_code = 4


class StaleTokenError(ConflictError):
    """The fencing token is not the card's current token."""


class LeaseExpiredError(StaleTokenError):
    """The lease has expired, or has less time left than the operation needs."""


class CycleError(UsageError):
    """The dependencies would form a cycle."""


class HostError(FleetError):
    """The host layer failed (tmux, runtime, heartbeat)."""


class DeliveryError(HostError):
    """A card or message could not be delivered into the pane."""

    exit_code = 5


class BrokerError(FleetError):
    """The broker is not reachable."""

    exit_code = 6


class StoreUnavailableError(FleetError):
    """The card store (database) is not reachable."""

    exit_code = 6


class AgentBusyError(DeliveryError):
    """The agent's pane is busy; nothing was typed."""


def parse_problem(exc: Exception) -> str:
    """A YAML/JSON parse error as one line: what is wrong and on which line.

    PyYAML's own message spans several lines (the offending text and a caret); a
    refusal must be one line, so only the problem and its line number are kept.
    """
    problem = getattr(exc, "problem", None) or getattr(exc, "msg", None)
    if not problem:
        problem = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else getattr(exc, "lineno", None)
    return f"{problem} (line {line})" if line else str(problem)
