"""`fleet init`: build a roster from a preset or profile, and regenerate it later.

No AI is involved: the operator picks a template, runtimes and models per
class, and adds or removes workers. Every path ends in :func:`parse_roster`, so
the floor (one orchestrator, at least one enhancer unless ``minimal``) holds in
whatever is written, and a bad choice is one line with nothing written.

Reconfigure is a three-way merge: the roster's recorded template (re-expanded
from the installed catalog) is the base, the operator's ``roster.yaml`` is
theirs, the chosen template is ours. The operator's differences from the base —
agents added, agents removed, fields changed — are replayed onto the new
template; docs/roster.md states the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_queue.catalog import Template, TemplateKind, list_templates, load_template
from fleet_queue.errors import FleetError, UsageError
from fleet_queue.roster import (
    ORCHESTRATOR,
    AgentSpec,
    Roster,
    known_runtimes,
    parse_roster,
    write_roster,
)

MERGED_FIELDS = tuple(name for name in AgentSpec.model_fields if name != "name")


@dataclass(frozen=True)
class InitChoices:
    """What the operator chose on top of a template (flags or wizard answers)."""

    runtimes: Mapping[str, str] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)
    add: Sequence[AgentSpec] = ()
    remove: Sequence[str] = ()


@dataclass(frozen=True)
class MergeReport:
    """What `--reconfigure` kept from the operator's roster, so they can check it."""

    roster: Roster
    kept: list[str]
    overrides: list[str]
    kept_out: list[str]
    new: list[str]
    dropped: list[str]

    def summary(self) -> str:
        parts = [
            f"{label}: {', '.join(items)}"
            for label, items in (
                ("kept your agents", self.kept),
                ("kept your overrides", self.overrides),
                ("kept removed", self.kept_out),
                ("new from template", self.new),
                ("dropped (not in template)", self.dropped),
            )
            if items
        ]
        return "; ".join(parts) or "no changes of yours to keep"


# --- parsing flags ---------------------------------------------------------------


def parse_pairs(values: Sequence[str], flag: str, what: str) -> dict[str, str]:
    """``CLASS=VALUE`` flags as a mapping; a malformed one is refused by name."""
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, chosen = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {value!r}: expected CLASS={what}")
        pairs[key.strip()] = chosen.strip()
    return pairs


def parse_added(value: str) -> AgentSpec:
    """``NAME=CLASS[:RUNTIME]``; the runtime defaults later, from the class or the lead."""
    name, sep, rest = value.partition("=")
    agent_class, _, runtime = rest.partition(":")
    if not sep or not name.strip() or not agent_class.strip():
        raise UsageError(f"--add {value!r}: expected NAME=CLASS[:RUNTIME]")
    return AgentSpec(name=name.strip(), agent_class=agent_class.strip(), runtime=runtime.strip())


# --- building ----------------------------------------------------------------------


def check_runtime(roster: Roster, runtime: str, where: str) -> None:
    known = known_runtimes(roster)
    if runtime not in known:
        raise UsageError(f"{where}: unknown runtime {runtime!r} (known: {', '.join(known)})")


def check_removals(template: Template, names: Sequence[str], remove: Sequence[str]) -> None:
    for name in remove:
        if name not in names:
            raise UsageError(f"--remove {name!r}: no such agent (agents: {', '.join(names)})")
        if name in template.floor:
            raise UsageError(
                f"--remove {name!r}: it is on the floor of {_label(template)}"
                f" ({', '.join(template.floor)} always stay)"
            )


def _label(template: Template) -> str:
    return f"{template.kind} {template.name}"


def _apply(
    template: Template,
    agents: list[AgentSpec],
    choices: InitChoices,
    runtimes_from: Roster | None = None,
) -> list[AgentSpec]:
    """Removals, additions, then per-class runtime and model; each bad choice is one line."""
    check_removals(template, [agent.name for agent in agents], choices.remove)
    kept = [agent for agent in agents if agent.name not in choices.remove]
    kept += [_complete_added(added, kept) for added in choices.add]
    classes = list(dict.fromkeys(agent.agent_class for agent in kept))
    for flag, chosen in (("--runtime", choices.runtimes), ("--model", choices.models)):
        for agent_class in chosen:
            if agent_class not in classes:
                raise UsageError(
                    f"{flag} {agent_class}=…: no agent of class {agent_class!r}"
                    f" (classes: {', '.join(classes)})"
                )
    for agent_class, runtime in choices.runtimes.items():
        where = f"--runtime {agent_class}={runtime}"
        check_runtime(runtimes_from or template.roster, runtime, where)
    return [_choose(agent, choices) for agent in kept]


def _complete_added(added: AgentSpec, agents: list[AgentSpec]) -> AgentSpec:
    lead = next((a for a in agents if a.agent_class == ORCHESTRATOR), None)
    same = next((a for a in agents if a.agent_class == added.agent_class), None)
    runtime = added.runtime or (same or lead or added).runtime or "claude"
    update: dict[str, Any] = {"runtime": runtime, "reset_between_tasks": True}
    if added.reports_to is None and lead is not None:
        update["reports_to"] = lead.name
    return added.model_copy(update=update)


def _choose(agent: AgentSpec, choices: InitChoices) -> AgentSpec:
    update: dict[str, Any] = {}
    if agent.agent_class in choices.runtimes:
        update["runtime"] = choices.runtimes[agent.agent_class]
    if agent.agent_class in choices.models:
        update["model_hint"] = choices.models[agent.agent_class] or None
    return agent.model_copy(update=update) if update else agent


def _assemble(base: Roster, agents: Sequence[AgentSpec], source: str, **top: Any) -> Roster:
    data = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.update(top)
    data["agents"] = [a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in agents]
    return parse_roster(data, source)


def build_roster(template: Template, choices: InitChoices | None = None) -> Roster:
    """The template with the operator's choices applied, validated (floor included)."""
    agents = _apply(template, list(template.roster.agents), choices or InitChoices())
    return _assemble(template.roster, agents, _label(template))


def write_new(roster: Roster, path: Path, force: bool) -> None:
    """Write a fresh roster; an existing one is only replaced with ``force``."""
    if path.exists() and not force:
        raise UsageError(
            f"{path}: a roster already exists; nothing written"
            " (use --force to replace it, or --reconfigure to regenerate it)"
        )
    write_roster(roster, path)


# --- reconfigure -------------------------------------------------------------------


def recorded_template(roster: Roster, source: Path) -> Template:
    """The template named in the roster (profile first), as the catalog expands it now."""
    if roster.profile:
        return load_template(roster.profile, "profile")
    if roster.preset:
        return load_template(roster.preset, "preset")
    raise UsageError(
        f"{source}: records no preset or profile; pass --preset or --profile to reconfigure"
    )


def _changed(base: AgentSpec, theirs: AgentSpec) -> dict[str, Any]:
    return {f: getattr(theirs, f) for f in MERGED_FIELDS if getattr(theirs, f) != getattr(base, f)}


def reconfigure(
    existing: Roster,
    target: Template,
    base: Template | None,
    choices: InitChoices | None = None,
) -> MergeReport:
    """Replay the operator's differences from ``base`` onto ``target``, then apply choices.

    ``base`` None means a hand-written roster: nothing was generated, so nothing
    counts as removed, and a same-named agent keeps every field the operator set.
    """
    theirs = {agent.name: agent for agent in existing.agents}
    base_agents = {agent.name: agent for agent in base.roster.agents} if base else {}
    fresh = target.roster.agents
    merged: list[AgentSpec] = []
    overrides: list[str] = []
    kept_out: list[str] = []
    for agent in fresh:
        if agent.name not in theirs:
            if agent.name in base_agents and agent.name not in target.floor:
                kept_out.append(agent.name)  # generated before, removed by the operator
            else:
                merged.append(agent)
            continue
        changes = _changed(base_agents.get(agent.name, agent), theirs[agent.name])
        overrides += [f"{agent.name}.{name}" for name in changes]
        merged.append(agent.model_copy(update=changes))
    fresh_names = {agent.name for agent in fresh}
    kept = [
        agent
        for agent in existing.agents
        if agent.name not in base_agents and agent.name not in fresh_names
    ]
    agents = _apply(target, merged + kept, choices or InitChoices(), runtimes_from=existing)
    origin = {"preset": target.roster.preset, "profile": target.roster.profile}
    top = {
        "runtimes": {
            **target.roster.model_dump(mode="json", exclude_none=True)["runtimes"],
            **existing.model_dump(mode="json", exclude_none=True)["runtimes"],
        },
        **{key: value for key, value in origin.items() if value},
    }
    roster = _assemble(
        existing.model_copy(update={"preset": None, "profile": None}),
        agents,
        f"reconfigure from {_label(target)}",
        **top,
    )
    return MergeReport(
        roster=roster,
        kept=[agent.name for agent in kept],
        overrides=overrides,
        kept_out=kept_out,
        new=[a.name for a in fresh if a.name not in theirs and a.name not in kept_out],
        dropped=[n for n in theirs if n in base_agents and n not in fresh_names],
    )


# --- the interactive wizard -------------------------------------------------------

Ask = Callable[[str, str], str]
Confirm = Callable[[str, bool], bool]
Show = Callable[[str], None]
ShowRoster = Callable[[Roster, str], None]


@dataclass
class Wizard:
    """The questions of `fleet init`, in order; I/O is passed in so the CLI owns the terminal."""

    ask: Ask
    confirm: Confirm
    show: Show
    show_roster: ShowRoster

    def run(self, path: Path, force: bool) -> Roster | None:
        """The roster to write, or None when the operator declines to write it."""
        template = self.choose_template()
        self.show_roster(template.roster, f"Recommended agents — {_label(template)}")
        if template.floor:
            self.show(f"Always staffed (the floor): {', '.join(template.floor)}")
        runtimes, models = self.choose_runtimes(template)
        remove = self.choose_removals(template)
        add = self.choose_additions(template)
        roster = build_roster(template, InitChoices(runtimes, models, add, remove))
        self.show_roster(roster, f"Your roster — {path}")
        if not self.confirm(f"Write {path}?", True):
            return None
        if path.exists() and not force and not self.confirm(f"{path} exists. Replace it?", False):
            raise FleetError(f"{path}: kept as it was; nothing written")
        return roster

    def choose_template(self) -> Template:
        templates = list_templates()
        for number, template in enumerate(templates, start=1):
            size = len(template.roster.agents)
            self.show(
                f"{number:>2}. {template.kind:<7} {template.name:<19} {size:>2} agents"
                f"  {template.title}"
            )
        answer = self.ask("Configuration type (number or name)", "coding").strip()
        if answer.isdigit() and 1 <= int(answer) <= len(templates):
            return templates[int(answer) - 1]
        kind, sep, name = answer.partition(":")
        if sep and kind in ("preset", "profile"):
            chosen: TemplateKind = "preset" if kind == "preset" else "profile"
            return load_template(name, chosen)
        return load_template(answer)

    def choose_runtimes(self, template: Template) -> tuple[dict[str, str], dict[str, str]]:
        runtimes: dict[str, str] = {}
        models: dict[str, str] = {}
        known = ", ".join(known_runtimes(template.roster))
        for agent_class, agents in _by_class(template.roster).items():
            names = ", ".join(a.name for a in agents)
            question = f"Runtime for {agent_class} ({names}; one of {known})"
            runtime = self.ask(question, agents[0].runtime)
            check_runtime(template.roster, runtime.strip(), f"runtime for {agent_class}")
            runtimes[agent_class] = runtime.strip()
            model = self.ask(f"Model for {agent_class} (blank: none)", agents[0].model_hint or "")
            models[agent_class] = model.strip()
        return runtimes, models

    def choose_removals(self, template: Template) -> list[str]:
        answer = self.ask("Remove agents (comma-separated names, blank: none)", "")
        remove = [name.strip() for name in answer.split(",") if name.strip()]
        check_removals(template, template.roster.names(), remove)
        return remove

    def choose_additions(self, template: Template) -> list[AgentSpec]:
        added: list[AgentSpec] = []
        while name := self.ask("Add a worker: name (blank when done)", "").strip():
            agent_class = self.ask(f"Class of {name}", "worker").strip()
            runtime = self.ask(f"Runtime of {name}", _lead_runtime(template.roster)).strip()
            check_runtime(template.roster, runtime, f"runtime of {name}")
            model = self.ask(f"Model of {name} (blank: none)", "").strip()
            added.append(
                AgentSpec(
                    name=name, agent_class=agent_class, runtime=runtime, model_hint=model or None
                )
            )
        return added


def _by_class(roster: Roster) -> dict[str, list[AgentSpec]]:
    groups: dict[str, list[AgentSpec]] = {}
    for agent in roster.agents:
        groups.setdefault(agent.agent_class, []).append(agent)
    return groups


def _lead_runtime(roster: Roster) -> str:
    lead = next((a for a in roster.agents if a.agent_class == ORCHESTRATOR), roster.agents[0])
    return lead.runtime
