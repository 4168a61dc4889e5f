"""Default answers: close the card the agent was handed, and plausible side replies.

`card_closer` plays a model that does what a card says: the card text ends
with `fleet card done ID --token N`, so it asks the runtime's own shell tool
to run exactly that, then says "done" once the tool result comes back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fleet_queue.model_double.recorded import RecordedRequest
from fleet_queue.model_double.replies import Reply, ToolCall, Usage

CARD_DONE = re.compile(r"fleet card done \S+ --token \d+")

# Codex offers its shell under different names and argument shapes from version to
# version; each maps the command line to that tool's arguments.
_OPENAI_SHELLS: dict[str, Any] = {
    "exec_command": lambda cmd: {"cmd": cmd},
    "shell_command": lambda cmd: {"command": cmd},
    "shell": lambda cmd: {"command": ["bash", "-lc", cmd]},
}


def shell_tool_call(request: RecordedRequest, command: str) -> ToolCall:
    """A call of the runtime's shell tool running `command`, in the shape the request offers."""
    if request.api == "anthropic":
        if "Bash" not in request.tools and "bash" in request.tools:  # pi, opencode
            return ToolCall("bash", {"command": command})
        return ToolCall("Bash", {"command": command, "description": "Run the command"})
    offered = request.tools
    for name, arguments in _OPENAI_SHELLS.items():
        if name in offered:
            return ToolCall(name, arguments(command))
    if {"exec", "functions.exec"} & set(offered):  # Codex's code mode: JavaScript that
        # calls the nested exec_command (Codex 0.171's TUI model offers no other shell)
        script = f"const r = await tools.exec_command({{cmd: {json.dumps(command)}}});\ntext(r);"
        return ToolCall("exec", {"input": script}, custom=True)
    raise LookupError(f"model double: no shell tool among the offered tools {offered}")


def card_closer(request: RecordedRequest) -> Reply:
    found = CARD_DONE.search(request.last_user_text())
    if found is None:
        return Reply(text="Hello from the model double.")
    if request.tool_results_since_user_text():
        return Reply(text="done")
    return Reply(tool_calls=[shell_tool_call(request, found.group(0))])


def side_reply(request: RecordedRequest) -> Reply:
    """Title, topic and safety-check requests: Claude Code parses these. Its auto permission
    mode asks a classifier about each tool call, with "<block>no</block>" meaning allow."""
    system = json.dumps(request.body.get("system", "")) if isinstance(request.body, dict) else ""
    if "<block>no</block>" in system:
        return Reply(text="<block>no</block>")
    if "isNewTopic" in system:
        return Reply(text='{"isNewTopic": false, "title": null}')
    if request.wants_schema or ("title" in system.lower() and "json" in system.lower()):
        return Reply(text='{"title": "Model double session"}')
    return Reply(text="Model double session")


def load_script(path: Path) -> list[Reply]:
    """Replies from a JSON list: [{"text": "hi"}, {"tool_calls": [{"name": N, "input": {}}]}]."""
    raw = json.loads(path.read_text())
    if not isinstance(raw, list):
        raise ValueError(f"{path}: a JSON list of replies expected")
    replies = []
    for item in raw:
        calls = [ToolCall(c["name"], c.get("input", {})) for c in item.pop("tool_calls", [])]
        usage = Usage(**item.pop("usage")) if "usage" in item else None
        replies.append(Reply(tool_calls=calls, usage=usage, **item))
    return replies
