"""What the double heard: one recorded request, read the same way for both APIs.

Frozen so a test can read it from any thread. It sits above the two API modules
because turning a body into conversation steps needs each API's parser; the
values both share stay in `replies`, so nothing here is imported back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fleet_queue.model_double import anthropic_api, openai_api
from fleet_queue.model_double.replies import Api, Event

# Text the CLIs put in user turns on their own, before or after what was typed:
# Claude Code's reminders, Codex's environment and instruction items.
_INJECTED = re.compile(
    r"^\s*<(system-reminder|environment_context|user_instructions|permissions instructions"
    r"|user_shell_command|turn_aborted)\b|^\s*# AGENTS\.md instructions"
)


@dataclass(frozen=True)
class RecordedRequest:
    api: Api
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    method: str = "POST"

    @property
    def tools(self) -> list[str]:
        """The names of the tools the CLI offered in this request: the ``tools`` field, and
        the ``additional_tools`` input items Codex's TUI sends for its default model
        (namespaced: ``functions.exec``, ``collaboration.spawn_agent``…)."""
        if not isinstance(self.body, dict):
            return []
        tools = self.body.get("tools")
        found = _tool_names(tools if isinstance(tools, list) else [])
        items = self.body.get("input")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("type") == "additional_tools":
                found += _tool_names(item.get("tools") or [])
        return found

    @property
    def is_main_turn(self) -> bool:
        """A turn of the agent's own loop: it offers tools and asks for no structured answer.
        Title, topic and token-count side requests offer none; Codex's title request offers
        its tools but asks for a JSON schema (``text.format``)."""
        return (
            self.method == "POST"
            and bool(self.tools)
            and not self.path.endswith("/count_tokens")
            and not self.wants_schema
        )

    @property
    def wants_schema(self) -> bool:
        """The request asks for JSON of a given schema (a title, a classification)."""
        if not isinstance(self.body, dict):
            return False
        for holder in (self.body.get("text"), self.body.get("output_config")):
            if isinstance(holder, dict) and isinstance(holder.get("format"), dict):
                return True
        return False

    @property
    def streaming(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    def events(self) -> list[Event]:
        if not isinstance(self.body, dict):
            return []
        parse = anthropic_api.events if self.api == "anthropic" else openai_api.events
        return parse(self.body)

    def user_texts(self) -> list[str]:
        """Every user text block, in order, without the CLIs' own injected blocks."""
        return [e.text for e in self.events() if e.kind == "user_text" and not injected(e.text)]

    def last_user_text(self) -> str:
        """The latest text the user typed, exactly as sent ("" when there is none)."""
        texts = self.user_texts()
        return texts[-1] if texts else ""

    def tool_results_since_user_text(self) -> list[Event]:
        """Tool results sent after the latest user text: the agent's loop is under way."""
        found: list[Event] = []
        for e in self.events():
            if e.kind == "user_text" and not injected(e.text):
                found = []
            elif e.kind == "tool_result":
                found.append(e)
        return found


def _tool_names(tools: list[Any], prefix: str = "") -> list[str]:
    names: list[str] = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        name = str(tool.get("name") or tool.get("type") or "")
        if tool.get("type") == "namespace" and isinstance(tool.get("tools"), list):
            names += _tool_names(tool["tools"], f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def injected(text: str) -> bool:
    return bool(_INJECTED.match(text))
