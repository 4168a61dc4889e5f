"""Runtime record lines in the shapes Claude Code 2.1 and Codex 0.171 write them
(recorded from the real CLIs against the model double, trimmed to the fields read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def claude_assistant(
    msg: str, req: str, usage: tuple[int, int, int, int], block: str = "text", **extra: Any
) -> dict[str, Any]:
    given, output, read, write = usage
    return {
        "type": "assistant",
        "requestId": req,
        "timestamp": extra.pop("timestamp", "2026-12-02T10:31:21.352Z"),
        "message": {
            "id": msg,
            "model": extra.pop("model", "claude-sonnet-4-5"),
            "type": "message",
            "role": "assistant",
            "content": [{"type": block}],
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": given,
                "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read,
                "output_tokens": output,
                "output_tokens_details": {"thinking_tokens": 0},
                "service_tier": "standard",
            },
        },
        **extra,
    }


def claude_prompt(text: str) -> dict[str, Any]:
    return {
        "type": "user",
        "timestamp": "2026-12-02T10:31:20.000Z",
        "message": {"role": "user", "content": text},
    }


def claude_tool_result() -> dict[str, Any]:
    return {
        "type": "user",
        "message": {"role": "user", "content": [{"type": "tool_result", "content": "hi"}]},
    }


def codex_token_count(
    total: tuple[int, int, int], last: tuple[int, int, int], at: str = "2026-12-02T10:31:22.171Z"
) -> dict[str, Any]:
    def usage(given: int, cached: int, output: int) -> dict[str, int]:
        return {
            "input_tokens": given,
            "cached_input_tokens": cached,
            "cache_write_input_tokens": 0,
            "output_tokens": output,
            "reasoning_output_tokens": 0,
            "total_tokens": given + output,
        }

    return {
        "timestamp": at,
        "type": "event_msg",
        "payload": {
            "type": "token_count",
            "info": {"total_token_usage": usage(*total), "last_token_usage": usage(*last)},
            "rate_limits": {"limit_id": "codex"},
        },
    }


def codex_turn_context(model: str) -> dict[str, Any]:
    return {
        "timestamp": "2026-12-02T10:31:21.000Z",
        "type": "turn_context",
        "payload": {"model": model},
    }


def codex_user(text: str) -> dict[str, Any]:
    return {
        "timestamp": "2026-12-02T10:31:21.100Z",
        "type": "response_item",
        "payload": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def append(path: Path, *entries: dict[str, Any], partial: str = "") -> None:
    """Append whole lines, and optionally the start of a line still being written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry) + "\n")
        handle.write(partial)
