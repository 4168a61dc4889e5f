"""A loopback model server speaking the Anthropic Messages and OpenAI Responses APIs.

The real agent CLIs (Claude Code, Codex) run against it in tests, demos and
benchmarks: it answers as scripted and records every request, so a test reads
exactly what the model was sent.
"""

from fleet_queue.model_double.recorded import RecordedRequest
from fleet_queue.model_double.replies import Event, Reply, ToolCall, Usage
from fleet_queue.model_double.script import card_closer, shell_tool_call
from fleet_queue.model_double.server import ModelDouble, Responder

__all__ = [
    "Event",
    "ModelDouble",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ToolCall",
    "Usage",
    "card_closer",
    "shell_tool_call",
]
