"""What runs in an agent's pane: launch command, reset command, environment, directory.

One adapter per runtime says how to launch it unattended with a model; a custom
``command`` (on the agent, or declared under the roster's ``runtimes:``) is run
as given. The pane's environment carries the fleet identity, never a password:
an agent reaches the store through ``FLEET_HOME/fleet.env`` (read by settings).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from fleet_queue.errors import HostError
from fleet_queue.roster import AgentSpec, Roster
from fleet_queue.settings import Settings, mask_url
from workers.runtime_homes import home_env, preflight
from workers.tmux import socket_name_for


@dataclass(frozen=True)
class RuntimeAdapter:
    """How one known runtime is launched and driven."""

    name: str
    binary: str
    unattended_flags: tuple[str, ...]
    reset_command: str | None
    process_names: frozenset[str]
    native_heartbeat: bool = False
    """The heartbeat's status is the runtime's own word (the stub itself; Claude Code's
    hooks; Codex's rollout and notify; pi's extension and opencode's plugin running our
    hooks), not a guess from the pane."""
    sidecar: bool = True
    """A sidecar writes the heartbeat while the pane's process lives (all but the stub)."""
    draft_markers: tuple[str, ...] = ()
    """Regexes that, on the cursor line after Enter, mean the text is still a draft
    (TUIs that fold a paste into a placeholder instead of echoing it)."""
    submit_delay: float = 0.0
    """Seconds between the end of a paste and Enter, for TUIs that swallow an
    Enter arriving in the same read as the paste."""
    tab_as: str | None = None
    """What a pasted tab becomes in the runtime's own record of the prompt. The text is
    typed with its tabs already so, so the record's hash proves what we typed."""


ADAPTERS: dict[str, RuntimeAdapter] = {
    "claude": RuntimeAdapter(
        name="claude",
        binary="claude",
        unattended_flags=("--dangerously-skip-permissions",),
        reset_command="/clear",
        process_names=frozenset({"claude", "node"}),
        native_heartbeat=True,
        draft_markers=(r"\[Pasted text #\d+",),
        # Measured on 2.1.332 in tmux: Enter in the same tmux command as a bracketed
        # paste (one write) is taken every time (tests/runtimes/test_adapters.py).
        submit_delay=0.0,
        # 2.1.332 stores a pasted tab as four spaces (its prompt hook and transcript).
        tab_as="    ",
    ),
    "codex": RuntimeAdapter(
        name="codex",
        binary="codex",
        unattended_flags=("--dangerously-bypass-approvals-and-sandbox",),
        reset_command="/new",
        process_names=frozenset({"codex", "node"}),
        native_heartbeat=True,
        draft_markers=(r"\[Pasted Content \d+ chars\]",),
        # Measured on 0.171.0: Enter right after a bracketed paste is taken, but Enter
        # within ~90 ms of *typed* keys is swallowed into a paste burst (0 of 11 at
        # <= 80 ms, all at >= 100 ms): Codex text is always pasted, never typed.
        submit_delay=0.0,
    ),
    "pi": RuntimeAdapter(
        name="pi",
        binary="pi",
        unattended_flags=(),  # pi never asks for permission
        reset_command="/new",
        process_names=frozenset({"pi", "node"}),
        native_heartbeat=True,  # its extension runs our hooks (workers.extension_homes)
        draft_markers=(r"\[paste #\d+",),
        submit_delay=0.05,
        tab_as="    ",  # 0.73.1 stores a pasted tab as four spaces (its session record)
    ),
    "opencode": RuntimeAdapter(
        name="opencode",
        binary="opencode",
        unattended_flags=(),  # permissions are "allow" in its opencode.json instead
        reset_command="/new",
        process_names=frozenset({"opencode", ".opencode", "bun", "node"}),
        native_heartbeat=True,  # its plugin runs our hooks (workers.extension_homes)
        draft_markers=(r"\[Pasted ~\d+ lines\]",),
        submit_delay=0.05,
    ),
    "stub": RuntimeAdapter(
        name="stub",
        binary=sys.executable,
        unattended_flags=(),
        reset_command="/clear",
        process_names=frozenset({"python", "python3", Path(sys.executable).name}),
        native_heartbeat=True,
        sidecar=False,
    ),
}

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to open (or respawn) one agent's pane."""

    agent: str
    runtime: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: Path
    reset_command: str | None
    native_heartbeat: bool
    process_names: frozenset[str]
    draft_markers: tuple[str, ...]
    submit_delay: float
    sidecar: bool = True
    unattended: bool = True
    tab_as: str | None = None


def adapter_for(runtime: str) -> RuntimeAdapter | None:
    return ADAPTERS.get(runtime)


def launch_plan(settings: Settings, roster: Roster, agent: AgentSpec) -> LaunchPlan:
    """The pane command, environment and directory for ``agent``; checks nothing on disk."""
    adapter = adapter_for(agent.runtime)
    declared = roster.runtimes.get(agent.runtime)
    argv = _argv(agent, adapter, declared.command if declared else None)
    reset = (declared.reset_command if declared else None) or (
        adapter.reset_command if adapter else None
    )
    custom = agent.command is not None or adapter is None
    env = pane_env(settings, agent, socket_name_for(settings, roster))
    if not custom:
        env.update(home_env(settings.home, agent.name, agent.runtime, env))
    return LaunchPlan(
        agent=agent.name,
        runtime=agent.runtime,
        argv=tuple(argv),
        env=env,
        cwd=working_directory(roster, agent),
        reset_command=reset,
        native_heartbeat=bool(adapter and adapter.native_heartbeat and not custom),
        process_names=_process_names(adapter, argv, custom),
        draft_markers=adapter.draft_markers if adapter else (),
        submit_delay=adapter.submit_delay if adapter else 0.0,
        sidecar=custom or adapter is None or adapter.sidecar,
        unattended=agent.unattended,
        tab_as=adapter.tab_as if adapter and not custom else None,
    )


def _argv(agent: AgentSpec, adapter: RuntimeAdapter | None, declared: str | None) -> list[str]:
    if agent.command:
        return shlex.split(agent.command)
    if adapter is None:
        if not declared:
            raise HostError(f"agent {agent.name!r}: runtime {agent.runtime!r} has no command")
        return shlex.split(declared)
    if adapter.name == "stub":
        base = [sys.executable, "-m", "workers.stub_agent", "--agent", agent.name]
    else:
        base = shlex.split(declared) if declared else [adapter.binary]
    if agent.model_hint and adapter.name != "stub":
        base += ["--model", agent.model_hint]
    if agent.unattended:
        base += list(adapter.unattended_flags)
    return base


def _process_names(adapter: RuntimeAdapter | None, argv: list[str], custom: bool) -> frozenset[str]:
    names = {Path(argv[0]).name} if argv else set()
    if adapter is not None and not custom:
        names |= adapter.process_names
    return frozenset(names)


def pane_env(settings: Settings, agent: AgentSpec, socket_name: str) -> dict[str, str]:
    """The pane's environment: fleet identity plus the roster's ``env:`` (``${VAR}`` expanded).

    Store and broker URLs are passed only when they hold no password; with a
    password they stay in ``FLEET_HOME/fleet.env``, which settings read anyway.
    """
    env = {
        "FLEET_AGENT": agent.name,
        "FLEET_HOME": str(settings.home),
        "FLEET_HOST": agent.host_or(settings.host),
        "FLEET_TENANT": agent.tenant_or(settings.tenant),
        "FLEET_TMUX_SOCKET": socket_name,
        "FLEET_HEARTBEAT_INTERVAL": str(settings.heartbeat_interval),
    }
    for key, url in (
        ("FLEET_DATABASE_URL", settings.database_url),
        ("FLEET_BROKER_URL", settings.broker_url),
    ):
        if url and mask_url(url) == url:
            env[key] = url
    for key, value in agent.env.items():
        env[key] = expand_env(value, agent.name, key)
    return env


def expand_env(value: str, agent: str, key: str) -> str:
    """``${VAR}`` from this process's environment; an unset variable is an error."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise HostError(f"agent {agent!r}: env.{key}: ${{{name}}} is not set")
        return os.environ[name]

    return _ENV_REF.sub(lookup, value)


def working_directory(roster: Roster, agent: AgentSpec) -> Path:
    raw = agent.working_directory or roster.defaults.working_directory
    return Path(os.path.expandvars(raw)).expanduser()


def check_launchable(plan: LaunchPlan) -> None:
    """A missing binary or directory, root without the sandbox opt-in, no API key, an
    unusable config dir: a clear error naming the agent, before tmux runs. The API key
    variables the pane needs are added to ``plan.env``."""
    if not plan.argv:
        raise HostError(f"agent {plan.agent!r}: empty command")
    binary = plan.argv[0]
    path = plan.env.get("PATH") or os.environ.get("PATH", "")
    if shutil.which(binary, path=path) is None:
        raise HostError(
            f"agent {plan.agent!r}: runtime {plan.runtime!r} binary {binary!r} not found on PATH"
        )
    if not plan.cwd.is_dir():
        raise HostError(f"agent {plan.agent!r}: working directory {plan.cwd} does not exist")
    if plan.native_heartbeat and plan.sidecar:  # claude, codex, pi, opencode: own home
        plan.env.update(preflight(plan.agent, plan.runtime, plan.argv, plan.env))
