"""The shipped catalog: presets, system-type profiles and the role library.

All three are package data under ``fleet_queue/data/`` so that a new preset or
profile is one YAML file and a new role one markdown file — no code changes.
An operator adds or replaces entries without touching the installed package in
``$FLEET_HOME/catalog/`` (``presets/*.yaml``, ``profiles/*.yaml``,
``roles/<domain>/*.md``): a local file of the same name wins over the shipped one,
and survives an upgrade of the package.
A *preset* is a complete roster. A *profile* is an org chart (roles, who
reports to whom, how many of each) that :func:`expand_profile` turns into a
roster. A *role* is a short markdown contract an agent can be pointed at.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet_queue.errors import ConfigError, UsageError, parse_problem
from fleet_queue.roster import (
    ENHANCER,
    ORCHESTRATOR,
    AgentSpec,
    Defaults,
    Roster,
    RuntimeConfig,
    parse_roster,
)

ROLE_SECTIONS = ("Mandate", "Boundaries", "Hand-offs")
FRONT_MATTER_RE = re.compile(r"\A---\n(?P<meta>.*?)\n---\n(?P<body>.*)\Z", re.S)

TemplateKind = Literal["preset", "profile"]


LOCAL_DIR_NAME = "catalog"
_home: Path | None = None


def data_dir() -> Traversable:
    return files("fleet_queue").joinpath("data")


def use_home(home: Path | None) -> None:
    """Read the operator's catalog from ``home/catalog`` (the CLI passes ``--home``)."""
    global _home
    _home = home


def local_dir() -> Path:
    """``$FLEET_HOME/catalog``: the operator's own presets, profiles and roles."""
    from fleet_queue.settings import DEFAULT_HOME

    home = _home or Path(os.environ.get("FLEET_HOME") or DEFAULT_HOME)
    return home.expanduser() / LOCAL_DIR_NAME


def _roots(folder: str) -> list[tuple[Traversable, str]]:
    """The shipped folder, then the local one when it exists; later roots win."""
    roots: list[tuple[Traversable, str]] = [(data_dir().joinpath(folder), folder)]
    local = local_dir() / folder
    if local.is_dir():
        roots.append((local, str(local)))
    return roots


def _yaml_files(folder: str) -> dict[str, tuple[Traversable, str]]:
    """Name → (file, source label), shipped entries replaced by local ones of that name."""
    found: dict[str, tuple[Traversable, str]] = {}
    for root, label in _roots(folder):
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".yaml"):
                found[entry.name.removesuffix(".yaml")] = (entry, f"{label}/{entry.name}")
    return dict(sorted(found.items()))


def _unknown(kind: str, name: str, known: list[str]) -> UsageError:
    return UsageError(f"unknown {kind} {name!r} (known: {', '.join(known)})")


def _load_yaml(entry: Traversable, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {parse_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a mapping")
    return data


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


# --- roles -------------------------------------------------------------------


class _RoleMeta(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    agent_class: str = Field(alias="class")
    domain: str
    persistent: bool
    summary: str


@dataclass(frozen=True)
class Role:
    """One role contract: its front matter plus the markdown body."""

    name: str
    agent_class: str
    domain: str
    persistent: bool
    summary: str
    body: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class": self.agent_class,
            "domain": self.domain,
            "persistent": self.persistent,
            "summary": self.summary,
        }


def parse_role(text: str, source: str) -> Role:
    """Front matter + body; every contract must state its mandate, boundaries and hand-offs."""
    match = FRONT_MATTER_RE.match(text)
    if match is None:
        raise ConfigError(f"{source}: a role starts with YAML front matter between '---' lines")
    try:
        meta = _RoleMeta.model_validate(yaml.safe_load(match["meta"]))
    except (yaml.YAMLError, ValidationError) as exc:
        detail = _first_error(exc) if isinstance(exc, ValidationError) else parse_problem(exc)
        raise ConfigError(f"{source}: front matter: {detail}") from None
    body = match["body"]
    missing = [s for s in ROLE_SECTIONS if not re.search(rf"^## {s}\s*$", body, re.M)]
    if missing:
        raise ConfigError(f"{source}: missing section(s): {', '.join(missing)}")
    return Role(
        meta.name, meta.agent_class, meta.domain, meta.persistent, meta.summary, body, source
    )


def _all_roles() -> dict[str, Role]:
    return _roles_under(local_dir())


@cache
def _roles_under(local: Path) -> dict[str, Role]:
    """Shipped roles, then the local ones: a local role replaces a shipped one of its name."""
    roles: dict[str, Role] = {}
    for root, label in _roots("roles"):
        seen_here: set[str] = set()
        for domain_dir in sorted(root.iterdir(), key=lambda e: e.name):
            if not domain_dir.is_dir():
                continue
            for entry in sorted(domain_dir.iterdir(), key=lambda e: e.name):
                if not entry.name.endswith(".md"):
                    continue
                source = f"{label}/{domain_dir.name}/{entry.name}"
                role = parse_role(entry.read_text(encoding="utf-8"), source)
                if role.name != entry.name.removesuffix(".md") or role.domain != domain_dir.name:
                    raise ConfigError(f"{source}: name and domain must match the file's path")
                if role.name in seen_here:
                    raise ConfigError(f"{source}: role {role.name!r} is defined twice")
                seen_here.add(role.name)
                roles[role.name] = role
    return dict(sorted(roles.items(), key=lambda item: (item[1].domain, item[0])))


def list_roles(domain: str | None = None) -> list[Role]:
    roles = list(_all_roles().values())
    if domain is None:
        return roles
    domains = role_domains()
    if domain not in domains:
        raise _unknown("domain", domain, domains)
    return [role for role in roles if role.domain == domain]


def role_domains() -> list[str]:
    return sorted({role.domain for role in _all_roles().values()})


def load_role(name: str) -> Role:
    roles = _all_roles()
    if name not in roles:
        raise _unknown("role", name, sorted(roles))
    return roles[name]


# --- presets -----------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A complete, valid roster with a name and a sentence about when to use it."""

    name: str
    title: str
    description: str
    roster: Roster


def preset_names() -> list[str]:
    return list(_yaml_files("presets"))


def load_preset(name: str) -> Preset:
    return _load_preset(name, local_dir())


@cache
def _load_preset(name: str, local: Path) -> Preset:
    entries = _yaml_files("presets")
    if name not in entries:
        raise _unknown("preset", name, list(entries))
    entry, source = entries[name]
    data = _load_yaml(entry, source)
    extra = set(data) - {"title", "description", "roster"}
    if extra or not isinstance(data.get("roster"), dict):
        raise ConfigError(f"{source}: expected keys title, description, roster")
    roster_data = dict(data["roster"])
    if roster_data.setdefault("preset", name) != name:
        raise ConfigError(f"{source}: roster.preset must be {name!r}")
    roster = parse_roster(roster_data, source)
    return Preset(name, str(data.get("title", name)), str(data.get("description", "")), roster)


def list_presets() -> list[Preset]:
    return [load_preset(name) for name in preset_names()]


# --- profiles ----------------------------------------------------------------


class Seat(BaseModel):
    """One line of a profile's org chart; ``multiplicity: 2`` gives ``coder0``, ``coder1``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    role: str
    name: str | None = None
    agent_class: str | None = Field(default=None, alias="class")
    reports_to: str | None = None
    multiplicity: int = Field(default=1, ge=1, le=32)
    runtime: str | None = None
    model_hint: str | None = None

    def agent_names(self) -> list[str]:
        base = self.name or self.role
        if self.multiplicity == 1:
            return [base]
        return [f"{base}{index}" for index in range(self.multiplicity)]


class Profile(BaseModel):
    """A system type: its lead seat, the floor that must stay staffed, and its seats."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    title: str
    description: str = ""
    lead: str
    floor: list[str]
    runtime: str = "claude"
    model_hint: str | None = None
    runtimes: dict[str, RuntimeConfig] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    agents: list[Seat]

    def seat(self, role: str) -> Seat:
        return next(seat for seat in self.agents if seat.role == role)

    def floor_agents(self) -> list[str]:
        """Agent names the wizard may not remove: the lead and every floor seat."""
        return [name for role in self.floor for name in self.seat(role).agent_names()]


def profile_names() -> list[str]:
    return list(_yaml_files("profiles"))


def load_profile(name: str) -> Profile:
    return _load_profile(name, local_dir())


@cache
def _load_profile(name: str, local: Path) -> Profile:
    entries = _yaml_files("profiles")
    if name not in entries:
        raise _unknown("profile", name, list(entries))
    entry, source = entries[name]
    data = _load_yaml(entry, source)
    if data.setdefault("name", name) != name:
        raise ConfigError(f"{source}: name must be {name!r}")
    return parse_profile(data, source)


def parse_profile(data: dict[str, Any], source: str = "profile") -> Profile:
    """Validate a profile: seats resolve to roles, the floor holds, and it expands cleanly."""
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None
    problem = _profile_problem(profile)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    expand_profile(profile, source=source)  # the floor and every roster rule, checked now
    return profile


def _profile_problem(profile: Profile) -> str | None:
    roles = [seat.role for seat in profile.agents]
    known = _all_roles()
    for seat in profile.agents:
        if seat.role not in known:
            return f"seat {seat.role!r}: role: not in the role library"
        if roles.count(seat.role) > 1:
            return f"seat {seat.role!r}: role: listed twice (use multiplicity)"
        if seat.reports_to is not None and seat.reports_to not in roles:
            return f"seat {seat.role!r}: reports_to: {seat.reports_to!r} is not a seat"
    for role in [profile.lead, *profile.floor]:
        if role not in roles:
            return f"lead/floor: {role!r} is not a seat of this profile"
    if profile.lead not in profile.floor:
        return f"floor: must include the lead {profile.lead!r}"
    if profile.seat(profile.lead).multiplicity != 1:
        return "lead: the lead seat is the orchestrator and cannot have multiplicity"
    if not any(_seat_class(profile, profile.seat(r)) == ENHANCER for r in profile.floor):
        return "floor: must include an enhancer seat"
    return None


def _seat_class(profile: Profile, seat: Seat) -> str:
    if seat.role == profile.lead:
        return ORCHESTRATOR
    return seat.agent_class or load_role(seat.role).agent_class


def expand_profile(profile: Profile, source: str | None = None) -> Roster:
    """The roster a profile stands for; the lead seat becomes the fleet's one orchestrator."""
    first_name = {seat.role: seat.agent_names()[0] for seat in profile.agents}
    agents: list[dict[str, Any]] = []
    for seat in profile.agents:
        role = load_role(seat.role)
        for name in seat.agent_names():
            spec = AgentSpec(
                name=name,
                runtime=seat.runtime or profile.runtime,
                agent_class=_seat_class(profile, seat),
                model_hint=seat.model_hint or profile.model_hint,
                persistent_persona=role.persistent,
                reset_between_tasks=not role.persistent,
                reports_to=first_name[seat.reports_to] if seat.reports_to else None,
                role=role.name,
            )
            agents.append(spec.model_dump(by_alias=True, exclude_none=True))
    data = {
        "profile": profile.name,
        "defaults": profile.defaults.model_dump(),
        "runtimes": {k: v.model_dump(exclude_none=True) for k, v in profile.runtimes.items()},
        "agents": agents,
    }
    return parse_roster(data, source or f"profiles/{profile.name}.yaml")


def list_profiles() -> list[Profile]:
    return [load_profile(name) for name in profile_names()]


# --- templates: what `fleet init` starts from --------------------------------


@dataclass(frozen=True)
class Template:
    """A preset or an expanded profile, with the agents the operator may not remove."""

    kind: TemplateKind
    name: str
    title: str
    description: str
    roster: Roster
    floor: list[str] = field(default_factory=list)


def template_of_preset(preset: Preset) -> Template:
    floor = [a.name for a in preset.roster.agents if a.agent_class in (ORCHESTRATOR, ENHANCER)]
    if preset.roster.preset == "minimal":
        floor = []
    return Template("preset", preset.name, preset.title, preset.description, preset.roster, floor)


def template_of_profile(profile: Profile) -> Template:
    roster = expand_profile(profile)
    return Template(
        "profile", profile.name, profile.title, profile.description, roster, profile.floor_agents()
    )


def load_template(name: str, kind: TemplateKind | None = None) -> Template:
    """A profile by that name, else a preset (``--profile coding`` works as it did in the seeds)."""
    if kind == "preset" or (kind is None and name not in profile_names()):
        if kind is None and name not in preset_names():
            known = sorted({*profile_names(), *preset_names()})
            raise _unknown("preset or profile", name, known)
        return template_of_preset(load_preset(name))
    return template_of_profile(load_profile(name))


def list_templates() -> list[Template]:
    presets = [template_of_preset(p) for p in list_presets()]
    return presets + [template_of_profile(p) for p in list_profiles()]
