"""Frozen values as plain JSON-able data: what every ``--json`` and the web board print."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any


def plain_fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as JSON-able values: datetimes in ISO 8601, enums by value,
    tuples as lists."""
    out: dict[str, Any] = {}
    for name in obj.__dataclass_fields__:
        value = getattr(obj, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out
