"""What the double answers: the values a test scripts, and the steps both APIs parse into.

Frozen dataclasses so a scripted reply can be queued twice without one test's
edit reaching another. Only values live here, below both API modules; what the
double heard (`recorded`) sits above them because reading it needs their parsers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Api = Literal["anthropic", "openai"]


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model makes; `input` is the tool's arguments as JSON."""

    name: str
    input: dict[str, Any]
    custom: bool = False
    """A freeform (Responses API "custom") tool: its raw text input is ``input["input"]``."""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 12
    output_tokens: int = 4
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class Reply:
    """One model answer. `error` answers with that HTTP status instead; `drop_stream`
    closes the connection half-way; `never` holds the request open until stop."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    think_time: float = 0.0
    error: int | None = None
    drop_stream: bool = False
    usage: Usage | None = None
    never: bool = False


@dataclass(frozen=True)
class Event:
    """One step of a conversation, the same for both APIs."""

    kind: Literal["user_text", "assistant_text", "tool_call", "tool_result"]
    text: str
    name: str = ""


def chunks(text: str, size: int = 24) -> list[str]:
    """Text cut into stream deltas, as a real model streams it: several, never none."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
