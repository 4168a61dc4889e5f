"""``fleet demo --runtime claude|codex|pi|opencode``: the demo's coders are the real CLI on a
model double.

The double (``fleet_queue.model_double``) runs in the demo's own process on loopback; its
default responder plays a model that does what a card says (calls the runtime's shell tool
with the card's ``fleet card done ID --token N``), so each coder card goes typed → real TUI
→ double → ``fleet card done`` → done without a network or an account. The coders' homes
(``CLAUDE_CONFIG_DIR``, ``CODEX_HOME``, pi's and opencode's private homes) are prepared
by ``fleet start``'s own code.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_queue.errors import UsageError

RUNTIMES = ("stub", "claude", "codex", "pi", "opencode")
DOUBLE_KEY = "sk-model-double-demo-0123456789abcdef"
"""Any key: the double checks none."""
KEY_VAR = "FLEET_DEMO_MODEL_KEY"
"""A roster keeps no key, only ``${VAR}``: the demo sets this one in its own environment
while its fleet starts (``model_key``)."""
CODEX_MODEL = "gpt-5-codex"
"""Codex 0.171's default model gets a JavaScript ``exec`` tool; this one its plain shell tool."""
ANTHROPIC_MODEL = "anthropic/claude-sonnet-4-5"
"""pi and opencode name a provider and a model; both talk to the double's Anthropic API."""
NPM_PACKAGES = {
    "claude": "@anthropic-ai/claude-code",
    "codex": "@openai/codex",
    "pi": "@mariozechner/pi-coding-agent",
    "opencode": "opencode-ai",
}
INSTALL_HINT = (
    "install the pinned version of runtimes/package.json with `bash scripts/runtimes.sh` and"
    " put .cache/runtimes/node_modules/.bin on PATH (or `npm install -g {package}`)"
)
CODER_CLASS = "implementer"


@dataclass
class RuntimeSetup:
    """What the demo needs for real coders: the CLI's directory and what to tell the user."""

    runtime: str
    bin_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def runtime_setup(runtime: str) -> RuntimeSetup:
    """Checked before anything starts: an unknown runtime or a missing CLI is one line."""
    if runtime not in RUNTIMES:
        raise UsageError(f"demo: unknown runtime {runtime!r} (choose one of {', '.join(RUNTIMES)})")
    if runtime == "stub":
        return RuntimeSetup(runtime)
    found = shutil.which(runtime)
    if found is None:
        hint = INSTALL_HINT.format(package=NPM_PACKAGES[runtime])
        raise UsageError(f"demo: the {runtime} CLI is not on PATH: {hint}")
    binary = Path(found)
    setup = RuntimeSetup(runtime, binary.parent)
    if runtime == "claude" and os.geteuid() == 0 and os.environ.get("IS_SANDBOX") != "1":
        setup.notes.append(
            "running as root: the demo's Claude Code coders get IS_SANDBOX=1 (Claude Code's own"
            " switch for --dangerously-skip-permissions as root) in this throwaway fleet only"
        )
    return setup


def coder_env(setup: RuntimeSetup, double_url: str) -> dict[str, str]:
    """The coder's roster ``env:``: the double as its model, the CLI and ``fleet`` on PATH."""
    dirs = [str(setup.bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    env = {"PATH": ":".join(d for d in dict.fromkeys(dirs) if d)}
    if setup.runtime == "codex":
        env |= {"OPENAI_BASE_URL": f"{double_url}/v1", "OPENAI_API_KEY": f"${{{KEY_VAR}}}"}
        return env
    env |= {"ANTHROPIC_BASE_URL": double_url, "ANTHROPIC_API_KEY": f"${{{KEY_VAR}}}"}
    if setup.runtime == "claude" and setup.notes:  # root: the opt-in, said in the output
        env["IS_SANDBOX"] = "1"
    if setup.runtime == "opencode":
        env["OPENCODE_DISABLE_MODELS_FETCH"] = "1"  # offline: its bundled model list
    return env


@contextmanager
def model_key() -> Iterator[None]:
    """The double's key in this process's environment while the demo runs, then as before."""
    before = os.environ.get(KEY_VAR)
    os.environ[KEY_VAR] = DOUBLE_KEY
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(KEY_VAR, None)
        else:
            os.environ[KEY_VAR] = before


def coder_entry(name: str, setup: RuntimeSetup, double_url: str, workdir: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "runtime": setup.runtime,
        "class": CODER_CLASS,
        "working_directory": str(workdir),
        "env": coder_env(setup, double_url),
    }
    if setup.runtime == "codex":
        entry["model_hint"] = CODEX_MODEL
    elif setup.runtime in ("pi", "opencode"):
        entry["model_hint"] = ANTHROPIC_MODEL
    return entry
