"""Each real runtime's own home, prepared by ``fleet start`` before its pane opens.

Claude Code gets ``CLAUDE_CONFIG_DIR`` = ``FLEET_HOME/agents/<agent>/claude``
(0700): ``.claude.json`` with onboarding done, the working directory trusted and
the API key's approval (its last 20 characters, as Claude Code itself stores
them), and ``settings.json`` with our hooks (``workers.hooks``) on every event
that says what the agent does, the budget guard on ``PreToolUse`` (refuses tool
calls while ``run/<agent>.over-budget`` exists), plus the acceptance of the
unattended switch's warning screen. Codex gets
``CODEX_HOME`` = ``FLEET_HOME/agents/<agent>/codex``
(0700) with ``config.toml``: the model provider from the agent's
``OPENAI_BASE_URL``, the working directory trusted, no update check,
``notify`` = our hook program and, attended, our hooks on its approval prompt.

``preflight`` refuses, with one line naming the agent, what would give a pane
that dies at once: root without the sandbox opt-in, no API key variable, a
config dir that cannot be used. Nothing is written or started before all
agents pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from fleet_queue.errors import HostError
from workers.evidence import RuntimeInfo, write_info, write_private
from workers.extension_homes import (
    load_json,
    opencode_env,
    pi_env,
    prepare_opencode,
    prepare_pi,
)

CLAUDE_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "Stop",
    "StopFailure",
    "Notification",
    "PermissionRequest",
    "PostToolUse",
    "SessionEnd",
)
CLAUDE_KEY_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
CODEX_KEY_VAR = "OPENAI_API_KEY"
CODEX_EVENTS = ("PermissionRequest", "PostToolUse")
"""Codex's hooks we run (``workers.hooks``): it asks a person; a tool call ended."""
CODEX_HOOK_TIMEOUT = 10
SANDBOX_VAR = "IS_SANDBOX"
"""Claude Code's own switch: set to 1 it allows ``--dangerously-skip-permissions`` as root."""
HOOK_MARK = "workers.hooks"
BUDGET_MARK = "fleet-budget-guard"
BUDGET_FLAG_SUFFIX = ".over-budget"
"""``run/<agent>.over-budget``: written by ``workers.spend_scan`` when the agent's budget is
spent and ``stop_turn`` is on; the PreToolUse hook refuses every tool call while it exists."""
APPROVED_KEY_CHARS = 20
EXTENSION_HOMES = {"pi": "PI_CODING_AGENT_DIR", "opencode": "OPENCODE_CONFIG"}
"""The variable that names a pi or opencode home (opencode's: its config file in it)."""
EXTENSION_ENVS = {"pi": pi_env, "opencode": opencode_env}
PROVIDER_KEY_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY")
"""Passed to a pi or opencode pane when set; neither is required (each has its own login)."""


def agent_home(fleet_home: Path, agent: str, runtime: str) -> Path:
    return fleet_home / "agents" / agent / runtime


def home_env(fleet_home: Path, agent: str, runtime: str, env: dict[str, str]) -> dict[str, str]:
    """The variables that point the runtime at its own home (a roster ``env:`` value wins)."""
    if runtime == "claude" and "CLAUDE_CONFIG_DIR" not in env:
        return {"CLAUDE_CONFIG_DIR": str(agent_home(fleet_home, agent, "claude"))}
    if runtime == "codex" and "CODEX_HOME" not in env:
        return {"CODEX_HOME": str(agent_home(fleet_home, agent, "codex"))}
    if runtime in EXTENSION_HOMES and EXTENSION_HOMES[runtime] not in env:
        made = EXTENSION_ENVS[runtime](agent_home(fleet_home, agent, runtime))
        return {key: value for key, value in made.items() if key not in env}
    return {}


def preflight(
    agent: str, runtime: str, argv: tuple[str, ...], env: dict[str, str]
) -> dict[str, str]:
    """One-line ``HostError`` for what would kill the pane at once; else the API key
    variables the pane needs from this process's environment (passed explicitly, so a
    tmux server started by another process still gives them to the pane)."""
    seen = {**os.environ, **env}
    if runtime == "claude":
        if (
            os.geteuid() == 0
            and "--dangerously-skip-permissions" in argv
            and seen.get(SANDBOX_VAR) != "1"
        ):
            raise HostError(
                f"agent {agent!r}: Claude Code refuses --dangerously-skip-permissions as root;"
                f" run fleet as a normal user, or (in a sandboxed container or VM only) set"
                f' env: {{{SANDBOX_VAR}: "1"}} on the agent'
            )
        keys: tuple[str, ...] = CLAUDE_KEY_VARS
    elif runtime == "codex":
        keys = (CODEX_KEY_VAR,)
    elif runtime in EXTENSION_HOMES:
        _check_dir(agent, EXTENSION_HOMES[runtime], _extension_home(runtime, env))
        return {k: seen[k] for k in PROVIDER_KEY_VARS if seen.get(k) and k not in env}
    else:
        return {}
    present = [key for key in keys if seen.get(key)]
    if not present:
        raise HostError(
            f"agent {agent!r}: runtime {runtime!r} needs {' or '.join(keys)} set"
            f" (export it before `fleet start`, or set env: {{{keys[0]}: ${{{keys[0]}}}}}"
            " on the agent in the roster)"
        )
    home_var = "CLAUDE_CONFIG_DIR" if runtime == "claude" else "CODEX_HOME"
    _check_dir(agent, home_var, Path(env[home_var]))
    return {key: seen[key] for key in present if key not in env}


def _check_dir(agent: str, var: str, path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = path / f".fleet-write-test.{os.getpid()}"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise HostError(
            f"agent {agent!r}: {var} {path} is not a usable directory"
            f" ({exc.strerror or type(exc).__name__})"
        ) from None


def prepare(
    run_dir: Path,
    agent: str,
    runtime: str,
    env: dict[str, str],
    cwd: Path,
    unattended: bool,
) -> None:
    """Write the runtime's home and ``run/<agent>.runtime.json`` (fresh evidence)."""
    hook = [sys.executable, "-I", "-m", HOOK_MARK, runtime]
    where = ["--agent", agent, "--run-dir", str(run_dir)]
    if runtime == "claude":
        home = Path(env["CLAUDE_CONFIG_DIR"])
        _private_dir(home)
        _claude_json(home, cwd, _first(env, CLAUDE_KEY_VARS))
        _claude_settings(home, hook, where, unattended)
        write_info(run_dir, agent, RuntimeInfo("claude", time.time()))
    elif runtime == "codex":
        home = Path(env["CODEX_HOME"])
        _private_dir(home)
        _codex_config(home, env, cwd, [*hook, "notify", *where])
        if not unattended:  # unattended, Codex never asks: no hook to run, nor to trust
            _codex_hooks(home / "config.toml", hook, where)
        write_info(run_dir, agent, RuntimeInfo("codex", time.time(), str(home)))
    elif runtime in EXTENSION_HOMES:
        home = _extension_home(runtime, env)
        _private_dir(home)
        if runtime == "pi":
            prepare_pi(home, env, hook, where)
        else:
            prepare_opencode(Path(env["OPENCODE_CONFIG"]), env, hook, where, unattended)
        write_info(run_dir, agent, RuntimeInfo(runtime, time.time()))


def _extension_home(runtime: str, env: dict[str, str]) -> Path:
    named = Path(env[EXTENSION_HOMES[runtime]])
    return named.parent if runtime == "opencode" else named


def _first(env: dict[str, str], keys: tuple[str, ...]) -> str:
    merged = {**os.environ, **env}
    return next((merged[key] for key in keys if merged.get(key)), "")


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _claude_json(home: Path, cwd: Path, key: str) -> None:
    path = home / ".claude.json"
    data = load_json(path)
    data.update(hasCompletedOnboarding=True, theme=data.get("theme", "dark"))
    project = data.setdefault("projects", {}).setdefault(str(cwd), {})
    project.update(hasTrustDialogAccepted=True, hasCompletedProjectOnboarding=True)
    if key:
        responses = data.setdefault("customApiKeyResponses", {"approved": [], "rejected": []})
        approved = responses.setdefault("approved", [])
        if key[-APPROVED_KEY_CHARS:] not in approved:
            approved.append(key[-APPROVED_KEY_CHARS:])
    _write_json(path, data)


def _claude_settings(home: Path, hook: list[str], where: list[str], unattended: bool) -> None:
    """Our hook on each event, beside any hook the operator put there."""
    path = home / "settings.json"
    data = load_json(path)
    hooks = data.setdefault("hooks", {})
    for event in CLAUDE_EVENTS:
        entries = [
            entry
            for entry in hooks.get(event, [])
            if HOOK_MARK not in json.dumps(entry)  # our earlier entry, perhaps another python
        ]
        command = shlex.join([*hook, event, *where])
        entries.append({"hooks": [{"type": "command", "command": command, "timeout": 10}]})
        hooks[event] = entries
    hooks["PreToolUse"] = [
        entry for entry in hooks.get("PreToolUse", []) if BUDGET_MARK not in json.dumps(entry)
    ] + [{"hooks": [{"type": "command", "command": _budget_guard(where), "timeout": 10}]}]
    if unattended:
        data["skipDangerousModePermissionPrompt"] = True
    _write_json(path, data)


def _budget_guard(where: list[str]) -> str:
    """The PreToolUse hook: print the agent's over-budget flag file if there is one.

    A shell ``cat``, not Python: it runs before every tool call. The file (written by
    ``workers.spend_scan``) holds Claude Code's hook answer — refuse the call and end the
    turn, with the reason; no file prints nothing and the call goes ahead.
    """
    agent, run_dir = where[where.index("--agent") + 1], where[where.index("--run-dir") + 1]
    flag = shlex.quote(str(Path(run_dir) / f"{agent}{BUDGET_FLAG_SUFFIX}"))
    return f"cat {flag} 2>/dev/null; exit 0 # {BUDGET_MARK}"


def _codex_config(home: Path, env: dict[str, str], cwd: Path, notify: list[str]) -> None:
    lines = [
        "# Written by `fleet start` for this agent; rewritten at each start.",
        "check_for_update_on_startup = false",
        "allow_login_shell = false  # /etc/profile would reset PATH: `fleet` must stay on it",
        f"notify = {_toml_list(notify)}",
    ]
    base_url = env.get("OPENAI_BASE_URL")
    if base_url:
        lines += [
            'model_provider = "fleet"',
            "",
            "[model_providers.fleet]",
            'name = "fleet"',
            f"base_url = {json.dumps(base_url)}",
            'wire_api = "responses"',
            f'env_key = "{CODEX_KEY_VAR}"',
        ]
    lines += ["", f"[projects.{json.dumps(str(cwd))}]", 'trust_level = "trusted"', ""]
    write_private(home / "config.toml", "\n".join(lines))


def _codex_hooks(config: Path, hook: list[str], where: list[str]) -> None:
    """Our hook on Codex's ``PermissionRequest`` and ``PostToolUse`` (an attended agent's),
    appended to its ``config.toml``, each trusted there by the hash Codex itself checks.

    Codex 0.171 runs a hook from the user's config only once ``hooks.state`` holds its
    ``trusted_hash`` (else it asks a person to review it at start, every start). The hash is
    Codex's own: sha256 of the hook's normalized identity as compact JSON with sorted keys,
    keyed by source file (``CODEX_HOME`` with its symlinks resolved, as Codex resolves
    it), event, group and handler. This trusts exactly our two hooks;
    ``--dangerously-bypass-hook-trust`` would trust every hook, a project's too.
    """
    source = config.resolve()
    tables: list[str] = []
    trusted: list[str] = []
    for event in CODEX_EVENTS:
        label = _snake(event)
        command = shlex.join([*hook, event, *where])
        handler = {"type": "command", "command": command, "timeout": CODEX_HOOK_TIMEOUT}
        tables += [f"[[hooks.{event}]]", f"[[hooks.{event}.hooks]]"]
        tables += [f"{key} = {json.dumps(value)}" for key, value in handler.items()] + [""]
        identity = {"event_name": label, "hooks": [{**handler, "async": False}]}
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        trusted += [f"[hooks.state.{json.dumps(f'{source}:{label}:0:0')}]"]
        trusted += [f'trusted_hash = "sha256:{digest}"', ""]
    text = config.read_text(encoding="utf-8")
    write_private(config, "\n".join([text.rstrip("\n"), "", *tables, *trusted]))


def _snake(event: str) -> str:
    """``PermissionRequest`` -> ``permission_request``: Codex's label for an event."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in event).lstrip("_")


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_private(path, json.dumps(data, indent=2) + "\n")
