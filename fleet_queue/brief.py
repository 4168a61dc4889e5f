"""An agent's standing brief: who it is, who it works with, and the commands it uses.

Cards tell an agent how to close *that* card; the brief tells it the rest, once,
from the roster and the role library: its identity and role contract, whom it
reports to and who reports to it, every peer with its host, how to hand work to a
peer on any host (a card targeted at it) and how to message a peer on this host.
``fleet agent brief NAME`` prints it; ``--send`` types it into the agent's pane.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fleet_queue.roster import Roster
from fleet_queue.settings import Settings


@dataclass(frozen=True)
class Peer:
    name: str
    agent_class: str
    host: str
    runtime: str


@dataclass(frozen=True)
class Brief:
    agent: str
    agent_class: str
    host: str
    tenant: str
    role: str | None
    """The role library's contract for the agent's class, when there is one."""
    role_summary: str | None
    reports_to: str | None
    reports: list[str]
    peers: list[Peer] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        lines = [
            f"You are {self.agent} ({self.agent_class}) on host {self.host}, tenant "
            f"{self.tenant}, in a fleet-queue fleet."
        ]
        if self.role:
            lines.append(f"Your role: {self.role_summary} (contract: fleet roles show {self.role})")
        if self.reports_to:
            lines.append(f"You report to {self.reports_to}.")
        if self.reports:
            lines.append(f"Reporting to you: {', '.join(self.reports)}.")
        lines += [
            "",
            "Work arrives here as cards. Each ends with the command that closes it:",
            "  fleet card done ID --token N",
            '  fleet card fail ID --token N --reason "<why>"',
            "Hand work to a peer on any host: a card targeted at it, or at a class:",
            '  fleet backlog create --id <ID> --title "<what>" --agent <peer>',
            '  fleet backlog create --id <ID> --title "<what>" --class <class>',
            'Message a peer on this host: fleet agent send <peer> --message "<text>"',
            "Message a peer on another host: a card targeted at it (--agent <peer>), which its",
            "  host's worker types into its pane.",
            "See the work: fleet board   |   the fleet: fleet ps",
        ]
        if self.peers:
            lines += ["", "Peers:"]
            lines += [
                f"  {p.name} ({p.agent_class}, host {p.host}"
                + (", this host)" if p.host == self.host else ", another host: use a card)")
                for p in self.peers
            ]
        return lines

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["text"] = self.text
        return data


def build_brief(settings: Settings, roster: Roster, name: str) -> Brief:
    """The brief of roster agent ``name``, as this host and tenant see it."""
    from fleet_queue import catalog

    agent = roster.known(name)
    tenant = agent.tenant_or(settings.tenant)
    roles = [r for r in catalog.list_roles() if r.agent_class == agent.agent_class]
    role = roles[0] if len(roles) == 1 else None
    team = [a for a in roster.agents if a.tenant_or(settings.tenant) == tenant]
    return Brief(
        agent=agent.name,
        agent_class=agent.agent_class,
        host=agent.host_or(settings.host),
        tenant=tenant,
        role=role.name if role else None,
        role_summary=role.summary if role else None,
        reports_to=agent.reports_to,
        reports=[a.name for a in team if a.reports_to == agent.name],
        peers=[
            Peer(a.name, a.agent_class, a.host_or(settings.host), a.runtime)
            for a in team
            if a.name != agent.name
        ],
    )
