"""The OpenAI Responses API as Codex reads it: SSE events and JSON bodies.

Streaming order follows the published reference: response.created,
response.in_progress, per output item response.output_item.added, its
deltas and *.done events, response.output_item.done, then
response.completed carrying the whole response with usage.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fleet_queue.model_double.replies import Event, Reply, Usage, chunks

SseEvent = tuple[str, dict[str, Any]]

ERROR_CODES = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


def events(body: dict[str, Any]) -> list[Event]:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    found: list[Event] = []
    for item in items or []:
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                content = [{"type": "input_text", "text": content}]
            role = item.get("role")
            if role not in ("user", "assistant"):
                continue  # developer / system instructions
            for part in content or []:
                if part.get("type") in ("input_text", "output_text", "text"):
                    found.append(
                        Event("user_text" if role == "user" else "assistant_text", part["text"])
                    )
        elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
            args = item.get("arguments") or item.get("input") or json.dumps(item.get("action"))
            found.append(Event("tool_call", str(args), item.get("name", kind)))
        elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            output = item.get("output")
            if isinstance(output, dict):
                output = output.get("content", json.dumps(output))
            elif isinstance(output, list):
                output = "\n".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
            found.append(Event("tool_result", str(output)))
    return found


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens + usage.cache_read_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.cache_read_tokens + usage.output_tokens,
    }


def _items(reply: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        items.append(
            {
                "id": f"msg_{uuid.uuid4().hex}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    for call in reply.tool_calls:
        if call.custom:
            items.append(
                {
                    "id": f"ctc_{uuid.uuid4().hex}",
                    "type": "custom_tool_call",
                    "status": "completed",
                    "call_id": f"call_{uuid.uuid4().hex[:24]}",
                    "name": call.name,
                    "input": str(call.input.get("input", "")),
                }
            )
            continue
        items.append(
            {
                "id": f"fc_{uuid.uuid4().hex}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_{uuid.uuid4().hex[:24]}",
                "name": call.name,
                "arguments": json.dumps(call.input),
            }
        )
    return items


def body(reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming body (also what response.completed carries)."""
    model = str(request.get("model") or "model-double")
    return {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": _items(reply),
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "usage": _usage(reply.usage or Usage()),
    }


def stream(reply: Reply, request: dict[str, Any]) -> list[SseEvent]:
    whole = body(reply, request)
    pending = dict(whole, status="in_progress", output=[], usage=None)
    out: list[SseEvent] = [
        ("response.created", {"type": "response.created", "response": pending}),
        ("response.in_progress", {"type": "response.in_progress", "response": pending}),
    ]
    for index, item in enumerate(whole["output"]):
        out += _item_events(index, item)
    out.append(("response.completed", {"type": "response.completed", "response": whole}))
    return [(name, dict(data, sequence_number=n)) for n, (name, data) in enumerate(out)]


def _ev(name: str, **fields: Any) -> SseEvent:
    return (name, {"type": name, **fields})


def _item_events(index: int, item: dict[str, Any]) -> list[SseEvent]:
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        part = {"type": "output_text", "text": "", "annotations": []}
        return [
            _ev(
                "response.output_item.added",
                output_index=index,
                item=dict(item, status="in_progress", content=[]),
            ),
            _ev("response.content_part.added", **where, content_index=0, part=part),
            *[
                _ev("response.output_text.delta", **where, content_index=0, delta=c)
                for c in chunks(text)
            ],
            _ev("response.output_text.done", **where, content_index=0, text=text),
            _ev("response.content_part.done", **where, content_index=0, part=dict(part, text=text)),
            _ev("response.output_item.done", output_index=index, item=item),
        ]
    if item["type"] == "custom_tool_call":
        return _call_events(index, item, "input", "response.custom_tool_call_input")
    return _call_events(index, item, "arguments", "response.function_call_arguments")


def _call_events(index: int, item: dict[str, Any], field: str, event: str) -> list[SseEvent]:
    """A tool call item: added empty, its input in deltas, done; the same for function
    calls (JSON `arguments`) and custom tools (raw `input`)."""
    where = {"item_id": item["id"], "output_index": index}
    raw = item[field]
    return [
        _ev(
            "response.output_item.added",
            output_index=index,
            item={**item, field: "", "status": "in_progress"},
        ),
        *[_ev(f"{event}.delta", **where, delta=c) for c in chunks(raw)],
        _ev(f"{event}.done", **where, **{field: raw}),
        _ev("response.output_item.done", output_index=index, item=item),
    ]


def error(status: int) -> dict[str, Any]:
    code = ERROR_CODES.get(status, "server_error")
    return {
        "error": {
            "type": "requests" if status == 429 else code,
            "code": code,
            "message": f"model double: scripted {status} ({code})",
            "param": None,
        }
    }


def models(model_ids: list[str]) -> dict[str, Any]:
    data = [
        {"id": m, "object": "model", "created": 1735689600, "owned_by": "model-double"}
        for m in model_ids
    ]
    return {"object": "list", "data": data}
