"""The program a real runtime runs at its own events; it writes heartbeat v1 and evidence.

    python -I -m workers.hooks claude EVENT --agent NAME --run-dir DIR   (hook JSON on stdin)
    python -I -m workers.hooks codex notify --agent NAME --run-dir DIR JSON
    python -I -m workers.hooks codex EVENT --agent NAME --run-dir DIR      (hook JSON on stdin)
    python -I -m workers.hooks pi|opencode EVENT --agent NAME --run-dir DIR   (JSON on stdin)

Claude Code events (``settings.json`` hooks written by ``fleet start``):

- ``SessionStart``, ``Stop``, ``StopFailure``: ``ok`` (waiting for input; a turn
  that ended on an API error is over too); a turn's end is appended to
  ``run/<agent>.turns`` with its transcript's path (the chat connector's reply);
- ``UserPromptSubmit``: ``busy card=ID`` (the card named in the prompt) and the
  prompt's sha256 appended to ``run/<agent>.prompts``: the proof a delivery was
  taken;
- ``PermissionRequest`` (the permission dialog is shown, ~0.1 s after the tool
  call) and ``Notification`` of a permission prompt or a question (elicitation,
  ~6 s later): ``waiting``; ``PostToolUse`` after it: ``busy`` again (the person
  answered);
- ``SessionEnd``: ``ok`` with no card (the process is leaving).

Codex calls ``notify`` with a JSON argument at each turn's end (its side turns' too): the
heartbeat is then written from its rollout. Its hooks (``config.toml``, trusted by hash):
``PermissionRequest`` as its approval prompt is shown: ``waiting``; ``PostToolUse``:
``busy``; the status is read with the rollout (``workers.evidence.codex_status``).

pi's extension and opencode's plugin (written by ``workers.extension_homes``) call
``pi EVENT`` / ``opencode EVENT`` with the same event names and payload keys
(``prompt``; ``last_assistant_message``): pi's session start, prompt before the agent
starts, agent end and shutdown; opencode's first catalog update (its TUI takes keys by
then), chat message, idle session, permission asked and replied.

Standard library only, and it never fails the runtime: any error is swallowed
(exit 0), since a hook that breaks would stop the agent's own turn.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workers import evidence

HOOKED = ("claude", "pi", "opencode")
"""Runtimes that run this program with Claude Code's event names and a JSON payload on
stdin: pi's extension and opencode's plugin (``workers/data``) speak them too."""
WAITING_NOTIFICATIONS = ("permission_prompt", "elicitation_dialog")
WAITING_WORDS = ("permission", "approve", "approval")
CODEX_SAYS = {"PermissionRequest": "waiting", "PostToolUse": "busy"}
"""Codex hook events (``workers.runtime_homes.CODEX_EVENTS``) and the status each says."""


def claude_event(run_dir: Path, agent: str, event: str, payload: dict[str, object]) -> None:
    state = evidence.read_state(run_dir, agent)
    card = state[1] if state else None
    if event == "UserPromptSubmit":
        prompt = payload.get("prompt")
        text = prompt if isinstance(prompt, str) else ""
        evidence.record_prompt(run_dir, agent, text)
        evidence.set_state(run_dir, agent, "busy", evidence.card_of(text))
    elif event in ("SessionStart", "Stop", "StopFailure", "SessionEnd"):
        if event in ("Stop", "StopFailure"):
            evidence.record_turn_end(run_dir, agent, event, payload)
        evidence.set_state(run_dir, agent, "ok", None)
    elif event == "PermissionRequest" or (event == "Notification" and _asks_a_person(payload)):
        evidence.set_state(run_dir, agent, "waiting", card)
    elif event == "PostToolUse" and state is not None and state[0] == "waiting":
        evidence.set_state(run_dir, agent, "busy", card)


def _asks_a_person(payload: dict[str, object]) -> bool:
    kind = payload.get("notification_type")
    if isinstance(kind, str):
        return kind in WAITING_NOTIFICATIONS
    message = str(payload.get("message", "")).lower()
    return any(word in message for word in WAITING_WORDS)


def codex_notify(run_dir: Path, agent: str, payload: dict[str, object]) -> None:
    if payload.get("type") == "agent-turn-complete":
        evidence.codex_hook(run_dir, agent, None)


def codex_event(run_dir: Path, agent: str, event: str) -> None:
    if event in CODEX_SAYS:
        evidence.codex_hook(run_dir, agent, CODEX_SAYS[event])


def main(argv: list[str]) -> int:
    try:
        runtime, event = argv[0], argv[1]
        agent = argv[argv.index("--agent") + 1]
        run_dir = Path(argv[argv.index("--run-dir") + 1])
        if runtime in HOOKED:
            claude_event(run_dir, agent, event, _load(sys.stdin.read()))
        elif runtime == "codex" and event == "notify":
            codex_notify(run_dir, agent, _load(argv[-1]))
        elif runtime == "codex":
            codex_event(run_dir, agent, event)
    except Exception as exc:  # a hook must never break the runtime's turn
        print(f"fleet hook: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 0


def _load(text: str) -> dict[str, object]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
