"""Host verbs: ``fleet start|stop|restart|verify|ps`` and ``fleet agent …``.

Thin: each command loads settings and the roster, calls ``workers`` (the host
layer) and prints a table or JSON. Only the fleet's tmux socket is touched.
Here: the verbs that change agents (start, stop, send, add, remove…); the ones
that only look (``ps``, ``agent tail|watch|attach|status``) are in ``host_look_cmd``,
registered from here so ``fleet`` still loads one group for them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet_queue.cli import agent_hold_cmd
from fleet_queue.cli.common import JsonFlag, emit, print_table, settings_and_roster
from fleet_queue.cli.host_look_cmd import attach, ps, status, tail, watch
from fleet_queue.errors import HostError, UsageError
from fleet_queue.roster import (
    ENHANCER,
    ORCHESTRATOR,
    Roster,
    parse_roster,
    write_roster,
)
from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from workers.delivery import DeliveryReceipt

Agents = Annotated[list[str] | None, typer.Argument(help="Agents (default: all on this host).")]

agent_app = typer.Typer(help="Send to, look at and manage one agent.", no_args_is_help=True)


def _results(results: list[Any], as_json: bool) -> None:
    rows = [{"agent": r.agent, "action": r.action, "pid": r.pid} for r in results]
    emit(rows, as_json, lambda: print_table(rows, ["agent", "action", "pid"]))


WaitFlag = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="With one agent: then wait while its pane lives; exit 1 when it dies"
        " (the main process of its systemd unit).",
    ),
]


def start(
    ctx: typer.Context, agents: Agents = None, wait: WaitFlag = False, as_json: JsonFlag = False
) -> None:
    """Start the fleet's tmux server and every missing agent session (idempotent)."""
    from workers.sessions import start_agents

    settings, roster = settings_and_roster(ctx)
    if wait and len(agents or []) != 1:
        raise UsageError("--wait takes exactly one agent")
    _results(start_agents(settings, roster, agents), as_json)
    if wait:
        from workers.pane_wait import wait_while_alive

        assert agents is not None
        raise HostError(wait_while_alive(settings, roster, agents[0]))


def stop(ctx: typer.Context, agents: Agents = None, as_json: JsonFlag = False) -> None:
    """Stop agent sessions; with no names the whole fleet (idempotent)."""
    from workers.sessions import stop_agents

    settings, roster = settings_and_roster(ctx)
    _results(stop_agents(settings, roster, agents), as_json)


def restart(ctx: typer.Context, agents: Agents = None, as_json: JsonFlag = False) -> None:
    """Stop then start agent sessions."""
    from workers.sessions import restart_agents

    settings, roster = settings_and_roster(ctx)
    _results(restart_agents(settings, roster, agents), as_json)


def verify(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check the holder and every local roster agent's session; non-zero naming what is missing."""
    from workers.sessions import verify as verify_sessions

    settings, roster = settings_and_roster(ctx)
    report = verify_sessions(settings, roster)
    data = {
        "ok": report.ok,
        "socket": report.socket,
        "host": settings.host,
        "tenant_id": settings.tenant,
        "server_running": report.server_running,
        "holder": report.holder,
        "missing": report.missing,
        "dead": report.dead,
    }
    if as_json:
        emit(data, True, lambda: None)
    if report.ok:
        if not as_json:
            typer.echo(f"ok: every agent has its session on socket {report.socket!r}")
        return
    problems = []
    if not report.server_running:
        problems.append(f"tmux server {report.socket!r} not running")
    elif not report.holder:
        problems.append("holder session missing")
    if report.missing:
        problems.append("missing sessions: " + ", ".join(report.missing))
    if report.dead:
        problems.append("dead panes: " + ", ".join(report.dead))
    raise HostError("; ".join(problems))


def send(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Agent to type into.")],
    stdin: Annotated[str | None, typer.Argument(help="'-' to read the text from stdin.")] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="The text.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the text from F.")] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Source label (default <host>:operator).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Type even into a busy pane.")] = False,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Confirm the pane accepted it.")
    ] = True,
    verify_timeout: Annotated[float, typer.Option(help="Seconds to wait for acceptance.")] = 5.0,
    as_json: JsonFlag = False,
) -> None:
    """Type a message into an agent's pane (sanitized, literal, bracketed paste)."""
    text = _message_text(stdin, message, file)
    settings, roster = settings_and_roster(ctx)
    roster.known(name)
    receipt = _deliver(settings, roster, name, text, source, verify, force, verify_timeout)
    state = "accepted" if receipt.verified else "sent"
    _audit(settings, name, f"typed into {name} ({state}): {_typed(text, receipt)}")
    emit(
        receipt.as_dict(),
        as_json,
        lambda: typer.echo(f"{state}: {len(receipt.text)} chars to {name} by {receipt.method}"),
    )


def _deliver(
    settings: Settings,
    roster: Roster,
    name: str,
    text: str,
    source: str | None,
    verify: bool,
    force: bool,
    verify_timeout: float = 5.0,
) -> DeliveryReceipt:
    from workers.delivery import Deliverer

    deliverer = Deliverer(settings, roster, verify_timeout=verify_timeout)
    try:
        return deliverer.deliver(
            name, text, source=source or f"{settings.host}:operator", verify=verify, force=force
        )
    finally:
        deliverer.close()


def brief(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Roster agent.")],
    send_it: Annotated[
        bool, typer.Option("--send", help="Type the brief into the agent's pane (this host).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="With --send: even if busy.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """An agent's standing brief: identity, role, team, and the commands it works with."""
    from fleet_queue.brief import build_brief

    settings, roster = settings_and_roster(ctx)
    the_brief = build_brief(settings, roster, name)
    data = the_brief.to_dict()
    if send_it:
        receipt = _deliver(settings, roster, name, the_brief.text, None, True, force)
        data["sent"] = receipt.as_dict()
        _audit(settings, name, f"typed {name}'s brief into it: {_typed(the_brief.text, receipt)}")
    emit(data, as_json, lambda: typer.echo(the_brief.text))


def _message_text(stdin: str | None, message: str | None, file: Path | None) -> str:
    given = [x for x in (stdin, message, file) if x is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --message TEXT, --file F or - (stdin)")
    if stdin is not None:
        if stdin != "-":
            raise UsageError(f"unexpected argument {stdin!r}; use --message TEXT or - for stdin")
        return sys.stdin.read()
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{file}: {exc.strerror}") from None
    assert message is not None
    return message


def reset(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Type the runtime's reset command (/clear, /new…) into the agent's pane."""
    from workers.observe import reset as reset_pane

    settings, roster = settings_and_roster(ctx)
    command = reset_pane(settings, roster, name)
    emit(
        {"agent": name, "reset_command": command},
        as_json,
        lambda: typer.echo(f"{name}: sent {command}"),
    )


def add(
    ctx: typer.Context,
    name: str,
    runtime: Annotated[str, typer.Option("--runtime", help="claude|codex|pi|opencode|stub|…")],
    agent_class: Annotated[str, typer.Option("--class", help="Role, e.g. coder.")],
    model: Annotated[str | None, typer.Option("--model", help="Model hint.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Host (default this).")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant id.")] = None,
    workdir: Annotated[str | None, typer.Option("--workdir", help="Working directory.")] = None,
    command: Annotated[str | None, typer.Option("--command", help="Custom command.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE (repeat).")] = None,
    no_start: Annotated[bool, typer.Option("--no-start", help="Only edit the roster.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add an agent to the roster and start its session."""
    from workers.sessions import start_agents

    settings, roster = settings_and_roster(ctx)
    entry: dict[str, Any] = {"name": name, "runtime": runtime, "class": agent_class}
    optional = {
        "model_hint": model,
        "host": host,
        "tenant_id": tenant,
        "working_directory": workdir,
        "command": command,
    }
    entry.update({k: v for k, v in optional.items() if v is not None})
    if env:
        entry["env"] = dict(_pair(item) for item in env)
    if name in roster.names():
        raise UsageError(f"agent {name!r} is already in the roster")
    data = roster.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["agents"].append(entry)
    new = parse_roster(data, str(settings.effective_roster_path))
    write_roster(new, settings.effective_roster_path)
    _audit(settings, name, f"added agent {name} (runtime {runtime}, class {agent_class})")
    started = []
    boot: str | None = None
    if new.agent(name).host_or(settings.host) == settings.host:
        if not no_start:
            started = start_agents(settings, new, [name])
        boot = _boot_unit(name, enabled=True)
    emit(
        {"agent": name, "added": True, "started": bool(started), "boot_unit": boot},
        as_json,
        lambda: typer.echo(
            f"added {name}"
            + (" and started its session" if started else "")
            + (f"; boot unit: {boot}" if boot else "")
        ),
    )


def _typed(text: str, receipt: DeliveryReceipt) -> str:
    """What the trail keeps of a message: the hash and length of the text the operator
    gave (so they can check it against their own copy), and how it went in."""
    from fleet_queue.audit import text_digest

    return f"{text_digest(text)} by {receipt.method}, source {receipt.source}"


def _audit(settings: Settings, agent: str, what: str, *, forget: bool = False) -> None:
    """The ``operator`` event of an action on an agent, with its actor (``fleet_queue.audit``);
    ``forget``: also drop its status rows, so ``ps`` does not list a removed agent as gone."""
    from fleet_queue.audit import record
    from fleet_queue.composition import open_card_store

    store = open_card_store(settings)
    try:
        if forget:
            store.forget_agent(agent)
        record(store, what, agent=agent)
    finally:
        store.close()


def _boot_unit(name: str, enabled: bool) -> str:
    """Keep boot survival symmetric with the roster: enable on add, disable on remove."""
    from workers.systemd_units import agent_unit, set_agent_enabled

    verb = "enabled" if enabled else "disabled"
    try:
        skipped = set_agent_enabled(name, enabled)
    except HostError as exc:  # the roster change stands; say what systemd refused
        return f"not {verb}: {exc.message}"
    return f"{agent_unit(name)} {verb}" if skipped is None else f"not {verb}: {skipped}"


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"--env {item!r}: expected KEY=VALUE")
    return key, value


def remove(ctx: typer.Context, name: str, as_json: JsonFlag = False) -> None:
    """Stop an agent's session and remove it from the roster."""
    from workers.sessions import stop_agents

    settings, roster = settings_and_roster(ctx)
    spec = roster.known(name)
    for role in (ORCHESTRATOR, ENHANCER):
        peers = [a for a in roster.agents if a.agent_class == role]
        if spec.agent_class == role and len(peers) == 1 and roster.preset != "minimal":
            raise UsageError(f"refusing to remove {name!r}: it is the fleet's only {role}")
    data = roster.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["agents"] = [a for a in data["agents"] if a["name"] != name]
    new = parse_roster(data, str(settings.effective_roster_path))
    boot: str | None = None
    if spec.host_or(settings.host) == settings.host:
        boot = _boot_unit(name, enabled=False)
        stop_agents(settings, roster, [name])
    write_roster(new, settings.effective_roster_path)
    _audit(settings, name, f"removed agent {name} from the roster", forget=True)
    emit(
        {"agent": name, "removed": True, "boot_unit": boot},
        as_json,
        lambda: typer.echo(f"removed {name}" + (f"; boot unit: {boot}" if boot else "")),
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to the root app."""
    app.command("start")(start)
    app.command("stop")(stop)
    app.command("restart")(restart)
    app.command("verify")(verify)
    app.command("ps")(ps)
    for command in (send, brief, tail, watch, attach, reset, status, add, remove):
        agent_app.command(command.__name__)(command)
    agent_hold_cmd.register(agent_app)  # pause, resume
    app.add_typer(agent_app, name="agent")


__all__ = ["register"]
