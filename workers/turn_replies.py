"""A turn's reply, read from the runtime's own record of the turn, never from the pane.

A chat message is typed as one delivery; its text (label and nonce included) hashes to
``prompt_sha``. The reply is what the runtime itself recorded for the turn that prompt
opened:

- stub: its log's ``reply`` record with that ``prompt_sha256``;
- Claude Code: the first turn end (``Stop`` / ``StopFailure`` hook, ``run/<agent>.turns``)
  after the UserPromptSubmit hook recorded that hash; the reply is the text of the turn's
  last model response in the transcript that hook names (after the user entry with that
  hash), else the hook's ``last_assistant_message``;
- pi, opencode: as Claude Code, from the turn end their extension / plugin recorded
  (``Stop`` / ``StopFailure``), its ``last_assistant_message``;
- Codex: in its rollout, the ``task_complete`` after the user message with that hash
  (its ``last_agent_message``, else the last assistant message before it).

None while the turn has not ended: the caller looks again. A turn that ended on an error
is a ``TurnReply`` with ``failed`` set. A reply of one turn can never be taken for
another's: each is found by its own prompt's hash, not by "the latest answer".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from workers import evidence
from workers.runtimes import LaunchPlan
from workers.stub_agent import log_path, read_stub_log

HOOKED = ("claude", "pi", "opencode")
"""Runtimes whose turn ends our hooks record (pi's extension and opencode's plugin with
the turn's last assistant text as ``last_assistant_message``)."""
TRANSCRIPT_TAIL = 4 * 1024 * 1024
"""Bytes of a Claude Code transcript read per look: a turn fits many times over."""


@dataclass(frozen=True)
class TurnReply:
    text: str
    failed: bool = False


def turn_reply(plan: LaunchPlan, prompt_sha: str, since: datetime) -> TurnReply | None:
    """The reply of the turn ``prompt_sha`` opened at or after ``since``; None: not ended."""
    run_dir = Path(plan.env.get("FLEET_HOME", "")) / "run"
    if plan.runtime == "stub":
        return stub_reply(_stub_log(plan, run_dir), prompt_sha)
    info = evidence.read_info(run_dir, plan.agent)
    if info is not None and info.runtime == "codex" and info.codex_home:
        return codex_reply(Path(info.codex_home), prompt_sha, since)
    if plan.runtime in HOOKED:
        return claude_reply(run_dir, plan.agent, prompt_sha, since)
    return None


def _stub_log(plan: LaunchPlan, run_dir: Path) -> Path:
    custom = plan.env.get("FLEET_STUB_LOG")
    return Path(custom) if custom else log_path(run_dir, plan.agent)


def stub_reply(path: Path, prompt_sha: str) -> TurnReply | None:
    for record in read_stub_log(path):
        if record.get("kind") == "reply" and record.get("prompt_sha256") == prompt_sha:
            return TurnReply(str(record.get("text", "")))
    return None


def claude_reply(run_dir: Path, agent: str, prompt_sha: str, since: datetime) -> TurnReply | None:
    taken = _prompt_time(run_dir, agent, prompt_sha, since)
    if taken is None:
        return None
    end = next((e for e in _turn_ends(run_dir, agent) if _ts(e) >= taken), None)
    if end is None:
        return None
    if end.get("event") == "StopFailure":
        return TurnReply("the turn ended on an API error", failed=True)
    path = end.get("transcript_path")
    text = transcript_reply(Path(path), prompt_sha) if isinstance(path, str) else None
    if text is None:
        last = end.get("last_assistant_message")
        text = last if isinstance(last, str) else None
    return TurnReply(text) if text else TurnReply("the turn ended with no text", failed=True)


def _prompt_time(run_dir: Path, agent: str, prompt_sha: str, since: datetime) -> datetime | None:
    try:
        lines = evidence.prompts_path(run_dir, agent).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        stamp, _, digest = line.partition(" ")
        when = evidence.parse_ts(stamp)
        if digest == prompt_sha and when >= since:
            return when
    return None


def _turn_ends(run_dir: Path, agent: str) -> list[dict[str, object]]:
    return [e for e in evidence.rollout_entries(evidence.turns_path(run_dir, agent)) if "ts" in e]


def _ts(entry: dict[str, object]) -> datetime:
    return evidence.parse_ts(str(entry.get("ts", "")))


def transcript_reply(path: Path, prompt_sha: str) -> str | None:
    """The text of the last model response after the user entry whose text hashes to
    ``prompt_sha`` (a tool result starts a new response), up to the next typed prompt."""
    texts: list[str] | None = None
    for entry in evidence.rollout_entries(path, TRANSCRIPT_TAIL):
        kind = entry.get("type")
        message = entry.get("message")
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if kind == "user":
            typed = _typed_text(content)
            if typed is not None:
                if texts is not None:
                    break  # the next prompt: our turn is over
                if evidence.sha256(typed) == prompt_sha:
                    texts = []
            elif texts is not None:
                texts = []  # a tool result: the model answers again
        elif kind == "assistant" and texts is not None and isinstance(content, list):
            texts += [
                b["text"]
                for b in content
                if isinstance(b, dict)
                and b.get("type") == "text"
                and isinstance(b.get("text"), str)
            ]
    if not texts:
        return None
    return "\n\n".join(t.strip() for t in texts if t.strip()) or None


def _typed_text(content: object) -> str | None:
    """A person's (or our delivery's) prompt; None for a tool result."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
        return None
    parts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return "".join(p for p in parts if isinstance(p, str))


def codex_reply(codex_home: Path, prompt_sha: str, since: datetime) -> TurnReply | None:
    path = evidence.latest_rollout(codex_home, since.timestamp())
    opened = False
    last: str | None = None
    for entry in evidence.rollout_entries(path) if path else []:
        user = evidence.user_text(entry)
        if user is not None:
            if opened:
                break
            opened = evidence.sha256(user) == prompt_sha
            continue
        if not opened:
            continue
        said = _assistant_text(entry)
        if said:
            last = said
        if evidence.event_type(entry) in ("task_complete", "turn_aborted"):
            payload = entry.get("payload")
            final = payload.get("last_agent_message") if isinstance(payload, dict) else None
            text = final if isinstance(final, str) and final else last
            aborted = evidence.event_type(entry) == "turn_aborted"
            return TurnReply(text or "the turn ended with no text", failed=aborted or not text)
    return None


def _assistant_text(entry: dict[str, object]) -> str | None:
    payload = entry.get("payload")
    if entry.get("type") != "response_item" or not isinstance(payload, dict):
        return None
    if payload.get("type") != "message" or payload.get("role") != "assistant":
        return None
    content = payload.get("content")
    parts = [
        p.get("text")
        for p in content if isinstance(p, dict) and p.get("type") == "output_text"
    ] if isinstance(content, list) else []  # fmt: skip
    return "".join(p for p in parts if isinstance(p, str)) or None
