"""pi's and opencode's own homes, prepared by ``fleet start`` before their panes open.

Neither has a hook setting like Claude Code's: each loads code of ours instead, which
runs the same hook program (``workers.hooks``) at the runtime's own events, so the
state, the prompts taken and the turn ends come from the runtime, never the pane.

pi gets ``PI_CODING_AGENT_DIR`` = ``FLEET_HOME/agents/<agent>/pi`` (0700):
``extensions/fleet-queue.ts`` (session start, prompt before the agent starts, agent end,
shutdown), and ``models.json`` pointing its ``anthropic`` / ``openai`` provider at the
agent's ``ANTHROPIC_BASE_URL`` / ``OPENAI_BASE_URL`` when set. pi has no permission
prompts; ``PI_OFFLINE=1`` keeps its start from downloading tools or checking updates.

opencode gets ``OPENCODE_CONFIG`` = ``FLEET_HOME/agents/<agent>/opencode/opencode.json``
(0700 dir) naming our plugin ``fleet-queue.js`` beside it, every permission ``allow``
when the agent is unattended (else opencode asks, and the plugin reports ``waiting``),
no autoupdate or sharing, no paste summary (a folded paste is sent with a space added),
and the provider base URLs as for pi. ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME`` and
``XDG_STATE_HOME`` point into that home: its global config, session database and login
(``auth.json``) are the agent's own, so it uses the API key variables it is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workers.evidence import write_private

DATA = Path(__file__).resolve().parent / "data"
PI_EXTENSION = "fleet-queue.ts"
OPENCODE_PLUGIN = "fleet-queue.js"
BASE_URL_VARS = {"anthropic": "ANTHROPIC_BASE_URL", "openai": "OPENAI_BASE_URL"}
OPENCODE_SDK = "@opencode-ai/plugin"
OPENCODE_ALLOW = ("edit", "bash", "webfetch", "external_directory", "doom_loop")
"""Every permission opencode 1.18 asks about: an unattended agent is never stopped by one."""


def pi_env(home: Path) -> dict[str, str]:
    return {"PI_CODING_AGENT_DIR": str(home), "PI_OFFLINE": "1"}


def opencode_env(home: Path) -> dict[str, str]:
    return {
        "OPENCODE_CONFIG": str(home / "opencode.json"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_SHARE": "1",
    }


def prepare_pi(home: Path, env: dict[str, str], hook: list[str], where: list[str]) -> None:
    (home / "extensions").mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(home / "extensions" / PI_EXTENSION, _code("pi_extension.ts", hook, where))
    path = home / "models.json"
    data = load_json(path)
    providers = data.setdefault("providers", {})
    for provider, var in BASE_URL_VARS.items():
        if env.get(var):
            providers.setdefault(provider, {})["baseUrl"] = env[var]
    if providers:
        write_private(path, json.dumps(data, indent=2) + "\n")


def prepare_opencode(
    path: Path, env: dict[str, str], hook: list[str], where: list[str], unattended: bool
) -> None:
    """``path``: the agent's ``OPENCODE_CONFIG``; the plugin goes beside it."""
    plugin = path.parent / OPENCODE_PLUGIN
    write_private(plugin, _code("opencode_plugin.js", hook, where))
    if env.get("XDG_CONFIG_HOME"):
        _plugin_sdk_settled(Path(env["XDG_CONFIG_HOME"]) / "opencode")
    data = load_json(path)
    data.update(autoupdate=False, share="disabled")
    # A paste of 3+ lines or 150+ chars is otherwise folded into "[Pasted ~N lines]" and
    # sent with a space added: the record would no longer be the text typed.
    data.setdefault("experimental", {})["disable_paste_summary"] = True
    others = [p for p in data.get("plugin", []) if OPENCODE_PLUGIN not in str(p)]
    data["plugin"] = [*others, plugin.as_uri()]
    if unattended:
        allow = dict.fromkeys(OPENCODE_ALLOW, "allow")
        data["permission"] = {**data.get("permission", {}), **allow}
    for provider, var in BASE_URL_VARS.items():
        if env.get(var):
            entry = data.setdefault("provider", {}).setdefault(provider, {})
            url = _with_v1(env[var]) if provider == "anthropic" else env[var]
            entry.setdefault("options", {})["baseURL"] = url
    write_private(path, json.dumps(data, indent=2) + "\n")


def _plugin_sdk_settled(config_dir: Path) -> None:
    """Tell opencode its plugin SDK is installed in its config dir: it is not needed.

    With a plugin configured, opencode 1.18 waits before loading it until ``npm install
    @opencode-ai/plugin`` in each config dir is done: ~17 s from the registry, and offline
    until npm gives up. It skips the install when ``node_modules`` exists and the lock names
    every wanted package; our plugin imports nothing but ``node:child_process``.
    """
    (config_dir / "node_modules").mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = config_dir / "package-lock.json"
    data = load_json(lock)
    root = data.setdefault("packages", {}).setdefault("", {})
    root.setdefault("dependencies", {}).setdefault(OPENCODE_SDK, "*")
    write_private(lock, json.dumps(data, indent=2) + "\n")


def _with_v1(url: str) -> str:
    """opencode's Anthropic SDK appends only ``/messages`` to its base; Claude Code and pi
    take the host and add ``/v1`` themselves. The same ``ANTHROPIC_BASE_URL`` serves all."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def _code(name: str, hook: list[str], where: list[str]) -> str:
    text = (DATA / name).read_text(encoding="utf-8")
    return text.replace("__FLEET_HOOK__", json.dumps(hook)).replace(
        "__FLEET_WHERE__", json.dumps(where)
    )


def load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
