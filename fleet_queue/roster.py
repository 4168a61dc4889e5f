"""The roster: what the fleet runs — agents, their runtime, class, host, tenant.

``roster.yaml`` is the operator's file; this module is its typed model and its
validation. Every error is one line naming the file, the agent and the field,
so a typo is never a silent no-op.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fleet_queue.credentials import roster_env_problem
from fleet_queue.errors import NotFoundError, RosterError, parse_problem
from fleet_queue.names import HolderName, HostName, SocketName, TenantName
from fleet_queue.private import write_private

BUILTIN_RUNTIMES = ("claude", "codex", "pi", "opencode", "stub")
"""Runtimes fleet-queue knows how to launch without a ``command``."""

ORCHESTRATOR = "orchestrator"
ENHANCER = "enhancer"
FLOOR_EXEMPT_PRESETS = frozenset({"minimal"})
DELEGATING_CLASSES = frozenset({ORCHESTRATOR, ENHANCER})
"""Classes that take no untargeted card unless the roster opts an agent in."""

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
"""tmux forbids ``.`` and ``:`` in session names; we keep names shell- and URL-safe too."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class TmuxConfig(_Strict):
    socket_name: SocketName | None = None
    holder_session: HolderName = "_holder"


class Defaults(_Strict):
    working_directory: str = "~"


class RuntimeConfig(_Strict):
    command: str | None = None
    reset_command: str | None = None


class ConnectorConfig(BaseModel):
    """Chat connector block; kinds beyond ``tmux`` keep their own keys."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str = "tmux"


class AgentSpec(_Strict):
    name: str
    runtime: str
    agent_class: str = Field(alias="class")
    model_hint: str | None = None
    persistent_persona: bool = False
    reset_between_tasks: bool = False
    unattended: bool = True
    host: HostName | None = None
    tenant_id: TenantName | None = None
    working_directory: str | None = None
    command: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    reports_to: str | None = None
    role: str | None = None
    """The role-library contract this agent fills (``fleet roles show``); informational."""
    takes_untargeted: bool | None = None
    """Whether the agent takes cards aimed at nobody. Unset: every class does but the
    orchestrator (it delegates) and the enhancer (no delivery work); they take only cards
    aimed at them or their class unless this says ``true``."""

    @property
    def takes_untargeted_cards(self) -> bool:
        """``takes_untargeted``, or its default for the agent's class."""
        if self.takes_untargeted is not None:
            return self.takes_untargeted
        return self.agent_class not in DELEGATING_CLASSES

    def host_or(self, default: str) -> str:
        return self.host or default

    def tenant_or(self, default: str) -> str:
        return self.tenant_id or default


class Roster(_Strict):
    version: int = 1
    transport: Literal["tmux"] = "tmux"
    preset: str | None = None
    """The preset that generated this roster; ``minimal`` is exempt from the floor."""
    profile: str | None = None
    """The system-type profile that generated this roster (``fleet init --reconfigure``)."""
    tmux: TmuxConfig = Field(default_factory=TmuxConfig)
    defaults: Defaults = Field(default_factory=Defaults)
    runtimes: dict[str, RuntimeConfig] = Field(default_factory=dict)
    agents: list[AgentSpec] = Field(default_factory=list)
    connector: ConnectorConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> Roster:
        for problem in roster_problems(self):
            raise ValueError(problem)
        return self

    def agent(self, name: str) -> AgentSpec:
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise RosterError(f"unknown agent {name!r}")

    def known(self, name: str) -> AgentSpec:
        """The agent an operator named: an unknown name is "not found" (exit 3), not bad input."""
        if name not in self.names():
            raise NotFoundError(f"unknown agent {name!r} (not in the roster)")
        return self.agent(name)

    def origin(self) -> str | None:
        """What generated this roster, e.g. ``profile research``; None if written by hand."""
        if self.profile:
            return f"profile {self.profile}"
        return f"preset {self.preset}" if self.preset else None

    def agents_on(self, host: str, tenant: str) -> list[AgentSpec]:
        """The agents that run on ``host`` for ``tenant`` (unset fields mean this host/tenant)."""
        return [
            agent
            for agent in self.agents
            if agent.host_or(host) == host and agent.tenant_or(tenant) == tenant
        ]

    def names(self) -> list[str]:
        return [agent.name for agent in self.agents]

    def to_yaml(self) -> str:
        """The operator's file: defaults left out so what is written is what was chosen."""
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        head = {"version": self.version, "transport": self.transport}
        data["agents"] = [
            {"name": a.name, "runtime": a.runtime, "class": a.agent_class, **dumped}
            for a, dumped in zip(self.agents, data.get("agents", []), strict=True)
        ]
        return yaml.safe_dump({**head, **data}, sort_keys=False)


def known_runtimes(roster: Roster) -> list[str]:
    """Runtimes an agent may name without its own ``command``."""
    declared = [name for name, rt in roster.runtimes.items() if rt.command]
    return sorted({*BUILTIN_RUNTIMES, *declared})


def roster_problems(roster: Roster) -> list[str]:
    """Every rule a roster must meet, as ``agent 'x': field: why`` lines."""
    problems: list[str] = []
    seen: set[str] = set()
    for agent in roster.agents:
        where = f"agent {agent.name!r}"
        if not NAME_RE.match(agent.name):
            problems.append(f"{where}: name: must match {NAME_RE.pattern} (safe as a tmux session)")
        if agent.name in seen:
            problems.append(f"{where}: name: duplicate agent name")
        seen.add(agent.name)
        problems.extend(_runtime_problems(roster, agent, where))
        problems.extend(_env_problems(agent, where))
    names = {agent.name for agent in roster.agents}
    for agent in roster.agents:
        if agent.reports_to is not None and agent.reports_to not in names:
            problems.append(
                f"agent {agent.name!r}: reports_to: {agent.reports_to!r} is not an agent"
            )
        if agent.reports_to == agent.name:
            problems.append(f"agent {agent.name!r}: reports_to: an agent cannot report to itself")
    problems.extend(_reports_to_cycles(roster))
    problems.extend(_floor_problems(roster))
    return problems


def _reports_to_cycles(roster: Roster) -> list[str]:
    """Each ``reports_to`` cycle of two or more agents, once, from where the roster meets it.

    Every agent has at most one ``reports_to``, so following it from each agent in roster
    order either ends (no boss, unknown boss) or comes back to an agent of this walk.
    """
    boss = {agent.name: agent.reports_to for agent in roster.agents}
    walked: set[str] = set()
    problems = []
    for agent in roster.agents:
        path: list[str] = []
        name: str | None = agent.name
        while name is not None and name not in walked and name not in path:
            path.append(name)
            name = boss.get(name)
        walked.update(path)
        if name is None or name not in path:
            continue
        cycle = path[path.index(name) :]
        if len(cycle) > 1:  # one agent reporting to itself has its own message
            chain = " -> ".join([*cycle, cycle[0]])
            problems.append(f"agent {cycle[0]!r}: reports_to: cycle {chain}")
    return problems


def _runtime_problems(roster: Roster, agent: AgentSpec, where: str) -> list[str]:
    if agent.command or agent.runtime in BUILTIN_RUNTIMES:
        return []
    declared = roster.runtimes.get(agent.runtime)
    if declared is not None and declared.command:
        return []
    known = ", ".join(sorted({*BUILTIN_RUNTIMES, *roster.runtimes}))
    return [f"{where}: runtime: unknown runtime {agent.runtime!r} with no command (known: {known})"]


def _env_problems(agent: AgentSpec, where: str) -> list[str]:
    problems = []
    for key, value in agent.env.items():
        problem = roster_env_problem(key, value)  # fleet_queue.credentials: names and URLs
        if problem:
            problems.append(f"{where}: env.{key}: {problem}")
    return problems


def _floor_problems(roster: Roster) -> list[str]:
    if not roster.agents:
        return ["agents: a roster needs at least one agent"]
    if roster.preset in FLOOR_EXEMPT_PRESETS:
        return []
    orchestrators = [a.name for a in roster.agents if a.agent_class == ORCHESTRATOR]
    enhancers = [a.name for a in roster.agents if a.agent_class == ENHANCER]
    problems = []
    if len(orchestrators) != 1:
        found = ", ".join(orchestrators) or "none"
        problems.append(
            f"agents: class: exactly one orchestrator is required, found {len(orchestrators)}"
            f" ({found})"
        )
    if not enhancers:
        problems.append("agents: class: at least one enhancer is required, found none")
    return problems


def parse_roster(data: Any, source: str = "roster") -> Roster:
    """Validate plain data as a roster; one-line ``RosterError`` naming source and field."""
    if not isinstance(data, dict):
        raise RosterError(f"{source}: the roster must be a mapping, got {type(data).__name__}")
    try:
        return Roster.model_validate(data)
    except ValidationError as exc:
        raise RosterError(f"{source}: {_describe(exc, data)}") from None


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    error = exc.errors()[0]
    loc = list(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if not loc:
        return message
    if loc[0] == "agents" and len(loc) >= 2 and isinstance(loc[1], int):
        agents = data.get("agents") or []
        name = (
            agents[loc[1]].get("name")
            if loc[1] < len(agents) and isinstance(agents[loc[1]], dict)
            else None
        )
        field = ".".join(str(part) for part in loc[2:]) or "agent"
        label = f"agent {name!r}" if name else f"agents[{loc[1]}]"
        return f"{label}: {field}: {message}"
    return f"{'.'.join(str(part) for part in loc)}: {message}"


def load_roster(path: Path) -> Roster:
    """Read and validate ``roster.yaml``."""
    if not path.exists():
        raise RosterError(f"{path}: no roster here (run `fleet init`)")
    if not path.is_file():
        raise RosterError(f"{path}: not a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RosterError(f"{path}: not valid YAML: {parse_problem(exc)}") from None
    return parse_roster(data, str(path))


def write_roster(roster: Roster, path: Path) -> None:
    """Write atomically, so a crash never leaves half a roster."""
    write_private(path, roster.to_yaml())


SCHEMA_ID = "https://fleet-queue.dev/schemas/roster.schema.json"


def roster_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``roster.yaml`` for editors; the floor rules live only in the model."""
    schema = Roster.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "fleet-queue roster",
        **{key: value for key, value in schema.items() if key != "title"},
    }
