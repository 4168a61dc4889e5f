"""The Anthropic Messages API as Claude Code reads it: SSE events and JSON bodies.

Shapes follow the published streaming reference: message_start, then per
content block content_block_start / *_delta / content_block_stop, then
message_delta (stop_reason, usage) and message_stop.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fleet_queue.model_double.replies import Event, Reply, Usage, chunks

SseEvent = tuple[str, dict[str, Any]]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def events(body: dict[str, Any]) -> list[Event]:
    found: list[Event] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue  # e.g. Claude Code's mid-conversation "system" messages
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for block in content or []:
            kind = block.get("type")
            if kind == "text":
                found.append(
                    Event("user_text" if role == "user" else "assistant_text", block["text"])
                )
            elif kind == "tool_use":
                found.append(
                    Event("tool_call", json.dumps(block.get("input")), block.get("name", ""))
                )
            elif kind == "tool_result":
                found.append(Event("tool_result", _result_text(block.get("content"))))
    return found


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content or "")


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        blocks.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": call.name,
                "input": call.input,
            }
        )
    return blocks


def _stop_reason(reply: Reply) -> str:
    return "tool_use" if reply.tool_calls else "end_turn"


def body(reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming body. Text is cut at the first of the request's stop_sequences,
    which the real API leaves out of the answer and names in `stop_sequence`."""
    blocks = _blocks(reply)
    stop_reason: str = _stop_reason(reply)
    stop_sequence = None
    for seq in request.get("stop_sequences") or []:
        text = blocks[0].get("text", "")
        if blocks[0]["type"] == "text" and seq in text:
            blocks[0]["text"] = text[: text.index(seq)]
            stop_reason, stop_sequence = "stop_sequence", seq
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": str(request.get("model") or "model-double"),
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": _usage(reply.usage or Usage()),
    }


def stream(reply: Reply, request: dict[str, Any]) -> list[SseEvent]:
    """The same answer as SSE events, text and tool input split into several deltas."""
    whole = body(reply, request)
    usage = whole["usage"]
    start = dict(whole, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    out: list[SseEvent] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(whole["content"]):
        if block["type"] == "text":
            empty: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in chunks(block["text"])]
        else:
            empty = dict(block, input={})
            raw = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": part} for part in chunks(raw)]
        out.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": empty},
            )
        )
        out += [
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": whole["stop_reason"],
                    "stop_sequence": whole["stop_sequence"],
                },
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    out.append(("message_stop", {"type": "message_stop"}))
    return out


def error(status: int) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": f"model double: scripted {status} ({kind})"},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


def count_tokens(body: dict[str, Any]) -> dict[str, Any]:
    """A plausible count: about four characters a token."""
    return {"input_tokens": max(1, len(json.dumps(body)) // 4)}


def models(model_ids: list[str]) -> dict[str, Any]:
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in model_ids
    ]
    return {"data": data, "has_more": False, "first_id": model_ids[0], "last_id": model_ids[-1]}
