"""systemd user units that keep one host's part of the fleet running across reboots.

Units rendered from the settings and the roster so the socket, paths and
``fleet`` executable are the ones this host really uses:

- ``fleet-tmux.service``: the private tmux server with its holder session. Every
  agent pane is a child of this server, so the server (not an agent unit) owns
  the panes; stopping it ends them all.
- ``fleet-agent@.service``: one instance per agent (``fleet-agent@coder0``). Its
  main process is ``fleet start --wait %i``: it starts the agent's session, then
  waits while the pane's process lives and exits 1 when it dies, so systemd sees
  the agent die and starts it again (``Restart=on-failure``).
- ``fleet-broker.service`` (embedded broker only: no ``FLEET_BROKER_URL``): the
  embedded redis-server (``fleet broker``), which the worker and beat want and
  start after; without it a one-machine fleet's worker exits 6 at every boot.
- ``fleet-worker.service``: the host worker (``fleet worker``).
- ``fleet-beat.service``: the schedule (``fleet beat``); enable it on ONE host only.
- ``fleet-connector.service`` (only where the roster's chat connector runs: its
  answering agent is on this host): ``fleet connector run``, which types into that
  agent's pane, so it wants the agent's unit; its bot secrets come from ``fleet.env``.

User units start at boot only when the user lingers (``loginctl enable-linger``);
``install-systemd`` reads ``loginctl show-user`` and says which it is.

Secrets never go into a unit: the fleet units read ``fleet.env`` (mode 0600) from
FLEET_HOME, and the tmux unit gets no ``FLEET_*`` variable at all, so nothing of
them reaches a pane's environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from fleet_queue.connector.config import local_answering_agent
from fleet_queue.errors import ConfigError, HostError, UsageError
from fleet_queue.roster import Roster
from fleet_queue.settings import ENV_FILE_NAME, Settings
from workers.linger import linger_hint, linger_state
from workers.tmux import TmuxServer, exact

TMUX_UNIT = "fleet-tmux.service"
AGENT_TEMPLATE = "fleet-agent@.service"
WORKER_UNIT = "fleet-worker.service"
BROKER_UNIT = "fleet-broker.service"
BEAT_UNIT = "fleet-beat.service"
CONNECTOR_UNIT = "fleet-connector.service"
DEFAULT_UNIT_DIR = Path("~/.config/systemd/user")
SYSTEMCTL_TIMEOUT = 30.0

HOLDER_COMMAND = ("sleep", "2147483647")
"""What the holder pane runs: nothing that reads input, so typing there does nothing."""


def agent_unit(name: str) -> str:
    return f"fleet-agent@{name}.service"


# ---------------------------------------------------------------- rendering


def fleet_executable() -> Path:
    """The absolute path of the ``fleet`` command that is running (or installed)."""
    argv0 = Path(sys.argv[0])
    candidates = [
        argv0 if argv0.name == "fleet" else None,
        Path(sys.executable).parent / "fleet",
        Path(found) if (found := shutil.which("fleet")) else None,
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.absolute()
    raise ConfigError("cannot find the `fleet` executable (install with `pip install -e .`)")


def _executable(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        raise HostError(f"{name} is not installed (not found on PATH)")
    return Path(found).absolute()


def _escape(value: str) -> str:
    """Escape one value for a unit file: specifiers (%) and variables ($) taken literally."""
    if "\n" in value or "\r" in value:
        raise ConfigError(f"a newline cannot go into a systemd unit: {value!r}")
    return value.replace("\\", "\\\\").replace("%", "%%").replace("$", "$$")


class Specifier(str):
    """A systemd specifier such as ``%i``: written as is, never escaped."""


INSTANCE = Specifier("%i")


def _arg(value: str) -> str:
    if isinstance(value, Specifier):
        return str(value)
    escaped = _escape(value).replace('"', '\\"')
    return f'"{escaped}"' if any(ch.isspace() or ch in "\"';" for ch in value) else escaped


def _command(*args: str | Path, ignore_failure: bool = False) -> str:
    line = " ".join(_arg(arg if isinstance(arg, str) else str(arg)) for arg in args)
    return f"-{line}" if ignore_failure else line


def _environment(values: dict[str, str]) -> list[str]:
    return [f'Environment="{_escape(f"{k}={v}")}"' for k, v in values.items()]


def fleet_environment(settings: Settings, socket_name: str) -> dict[str, str]:
    """The settings a unit pins: identity and paths, never a URL or password.

    FLEET_HOST is pinned so a renamed machine keeps its identity (and its
    leases); PATH is pinned so runtimes found by the installing shell are found
    at boot too.
    """
    env = {
        "FLEET_HOME": str(settings.home),
        "FLEET_HOST": settings.host,
        "FLEET_TENANT": settings.tenant,
        "FLEET_TMUX_SOCKET": socket_name,
    }
    if settings.roster_path is not None:
        env["FLEET_ROSTER_PATH"] = str(settings.roster_path)
    env["PATH"] = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


@dataclass(frozen=True)
class UnitContext:
    """Everything a unit text depends on, resolved once."""

    fleet: Path
    tmux: Path
    mkdir: Path
    server: TmuxServer
    env_file: Path
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(cls, settings: Settings, roster: Roster, fleet: Path | None = None) -> UnitContext:
        server = TmuxServer.for_fleet(settings, roster)
        return cls(
            fleet=fleet or fleet_executable(),
            tmux=_executable("tmux"),
            mkdir=_executable("mkdir"),
            server=server,
            env_file=settings.home / ENV_FILE_NAME,
            environment=fleet_environment(settings, server.socket_name),
        )

    def tmux_args(self, *args: str) -> tuple[str, ...]:
        return (str(self.tmux), "-L", self.server.socket_name, "-f", str(self.server.config), *args)

    def fleet_service_lines(self) -> list[str]:
        return [*_environment(self.environment), f"EnvironmentFile=-{_escape(str(self.env_file))}"]


def _unit(description: str, unit: list[str], service: list[str]) -> str:
    lines = ["[Unit]", f"Description={description}", *unit, "", "[Service]", *service]
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


def render_tmux_unit(ctx: UnitContext) -> str:
    server = ctx.server
    env = {"TMUX_TMPDIR": str(server.tmpdir), "PATH": ctx.environment["PATH"]}
    holder = server.holder_session
    return _unit(
        f"fleet-queue tmux server (socket {server.socket_name}) holding the agents' sessions",
        [],
        [
            # oneshot + RemainAfterExit: tmux daemonizes; the server stays in this
            # unit's cgroup. The first ExecStart may fail when the server already
            # runs; the second proves the holder session exists either way.
            "Type=oneshot",
            "RemainAfterExit=yes",
            *_environment(env),
            "UMask=0077",
            f"ExecStartPre={_command(ctx.mkdir, '-p', server.tmpdir)}",
            "ExecStart="
            + _command(
                *ctx.tmux_args("new-session", "-d", "-s", holder, "-x", "200", "-y", "50"),
                *HOLDER_COMMAND,
                ignore_failure=True,  # no "--": tmux 3.3a crashes on it
            ),
            f"ExecStart={_command(*ctx.tmux_args('has-session', '-t', exact(holder)))}",
            f"ExecStop={_command(*ctx.tmux_args('kill-server'), ignore_failure=True)}",
            "Restart=on-failure",
            "RestartSec=5",
        ],
    )


def render_agent_unit(ctx: UnitContext) -> str:
    return _unit(
        "fleet-queue agent %i in its tmux session",
        [f"Requires={TMUX_UNIT}", f"After={TMUX_UNIT}"],
        [
            # The pane is a child of fleet-tmux.service's server; this unit's main
            # process starts it, then waits while it lives and exits 1 when it dies,
            # so systemd watches the agent and starts it again.
            "Type=simple",
            *ctx.fleet_service_lines(),
            f"ExecStart={_command(ctx.fleet, 'start', '--wait', INSTANCE)}",
            f"ExecStop={_command(ctx.fleet, 'stop', INSTANCE)}",
            "Restart=on-failure",
            "RestartSec=10",
        ],
    )


def render_broker_unit(ctx: UnitContext) -> str:
    return _unit(
        "fleet-queue embedded broker (redis-server on FLEET_HOME/run/redis.sock)",
        [],
        [
            "Type=simple",
            *ctx.fleet_service_lines(),
            "UMask=0077",  # the AOF holds every queued message
            f"ExecStart={_command(ctx.fleet, 'broker')}",
            "Restart=always",
            "RestartSec=2",
            "KillSignal=SIGTERM",  # redis-server saves, then exits
            "TimeoutStopSec=30",
        ],
    )


def _broker_lines(embedded: bool) -> list[str]:
    """A worker or beat of a one-machine fleet wants the embedded broker, started first."""
    return [f"Wants={BROKER_UNIT}", f"After={BROKER_UNIT}"] if embedded else []


def render_worker_unit(ctx: UnitContext, embedded: bool = False) -> str:
    return _unit(
        "fleet-queue host worker: delivers cards into this host's tmux panes",
        [f"Wants={TMUX_UNIT}", f"After={TMUX_UNIT}", *_broker_lines(embedded)],
        [
            "Type=simple",
            *ctx.fleet_service_lines(),
            f"ExecStart={_command(ctx.fleet, 'worker')}",
            "Restart=always",
            "RestartSec=5",
            # Celery's warm shutdown finishes the delivery in hand before exiting.
            "KillSignal=SIGTERM",
            "TimeoutStopSec=60",
        ],
    )


def render_beat_unit(ctx: UnitContext, embedded: bool = False) -> str:
    return _unit(
        "fleet-queue beat: supervisor tick, reclaim, host status (one per fleet)",
        _broker_lines(embedded),
        [
            "Type=simple",
            *ctx.fleet_service_lines(),
            f"ExecStart={_command(ctx.fleet, 'beat')}",
            "Restart=always",
            "RestartSec=5",
        ],
    )


def render_connector_unit(ctx: UnitContext, agent: str, embedded: bool = False) -> str:
    """The chat connector types into ``agent``'s pane: it wants that agent and the worker."""
    wanted = [TMUX_UNIT, agent_unit(agent), WORKER_UNIT]
    ordering = [*(f"Wants={unit}" for unit in wanted), *(f"After={unit}" for unit in wanted)]
    return _unit(
        f"fleet-queue chat connector: chat messages to agent {agent} and its replies back",
        [*ordering, *_broker_lines(embedded)],
        [
            "Type=simple",
            *ctx.fleet_service_lines(),  # FLEET_MATRIX_PASSWORD and the bot tokens: fleet.env
            f"ExecStart={_command(ctx.fleet, 'connector', 'run')}",
            # A bad roster or a missing secret exits at once: retry slowly, not in a tight loop.
            "Restart=on-failure",
            "RestartSec=15",
            "TimeoutStopSec=30",  # SIGTERM: the connector closes its network session
        ],
    )


def render_units(settings: Settings, roster: Roster, fleet: Path | None = None) -> dict[str, str]:
    """Unit file name -> text, for this host's part of the fleet."""
    ctx = UnitContext.resolve(settings, roster, fleet)
    embedded = settings.broker_is_embedded
    units = {
        TMUX_UNIT: render_tmux_unit(ctx),
        AGENT_TEMPLATE: render_agent_unit(ctx),
        WORKER_UNIT: render_worker_unit(ctx, embedded),
        BEAT_UNIT: render_beat_unit(ctx, embedded),
    }
    if embedded:
        units[BROKER_UNIT] = render_broker_unit(ctx)
    agent = local_answering_agent(roster, settings)
    if agent is not None:
        units[CONNECTOR_UNIT] = render_connector_unit(ctx, agent, embedded)
    return units


def local_agents(settings: Settings, roster: Roster) -> list[str]:
    """The roster's agents that run on this host for this tenant."""
    return [agent.name for agent in roster.agents_on(settings.host, settings.tenant)]


# ---------------------------------------------------------------- systemctl


class UnitState(NamedTuple):
    active: bool
    enabled: bool
    active_state: str
    unit_file_state: str


def parse_show(text: str) -> UnitState:
    """``systemctl show -p ActiveState -p UnitFileState`` output as a state."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    active = values.get("ActiveState", "")
    file_state = values.get("UnitFileState", "")
    return UnitState(
        active=active in ("active", "reloading", "activating"),
        enabled=file_state in ("enabled", "enabled-runtime", "static", "alias", "indirect"),
        active_state=active,
        unit_file_state=file_state,
    )


def _systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        raise FileNotFoundError("systemctl")
    return subprocess.run(
        [systemctl, "--user", *args],
        capture_output=True,
        text=True,
        timeout=SYSTEMCTL_TIMEOUT,
        check=False,
    )


def user_manager_unavailable() -> str | None:
    """Why ``systemctl --user`` cannot be used here, or None when it can."""
    try:
        probe = _systemctl("show-environment")
    except FileNotFoundError:
        return "systemctl is not installed"
    except subprocess.TimeoutExpired:
        return "systemctl --user did not answer"
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no user systemd"])[0]
        return f"no user systemd manager ({reason})"
    return None


def unit_state(agent: str) -> UnitState | None:
    """Active/enabled state of the agent's unit; None when there is no user systemd."""
    states = unit_states([agent])
    return None if states is None else states.get(agent)


def unit_states(agents: list[str]) -> dict[str, UnitState] | None:
    """Each agent's unit state from one ``systemctl show``; None without user systemd."""
    if not agents or user_manager_unavailable() is not None:
        return None
    units = {agent_unit(name): name for name in agents}
    proc = _systemctl("show", "-p", "Id", "-p", "ActiveState", "-p", "UnitFileState", *units)
    if proc.returncode != 0:
        return None
    states = {}
    for block in proc.stdout.split("\n\n"):
        unit = next((ln[3:] for ln in block.splitlines() if ln.startswith("Id=")), None)
        if unit in units:
            states[units[unit]] = parse_show(block)
    return states


def unit_summary(state: UnitState | None) -> str:
    """A few characters for ``ps``: the unit's state, and ", no boot" when not enabled."""
    if state is None:
        return "-"
    return (state.active_state or "?") + ("" if state.enabled else ", no boot")


def set_agent_enabled(agent: str, enabled: bool) -> str | None:
    """Enable (``fleet agent add``) or disable (``remove``) the agent's unit for boot.

    Returns why nothing was done when there is no user systemd, else None; a
    removed agent whose unit stayed enabled would come back at the next boot.
    """
    reason = user_manager_unavailable()
    if reason is not None:
        return reason
    if not (DEFAULT_UNIT_DIR.expanduser() / AGENT_TEMPLATE).exists():
        return f"{AGENT_TEMPLATE} is not installed (fleet install-systemd)"
    verb = ("enable",) if enabled else ("disable", "--now")
    proc = _systemctl(*verb, agent_unit(agent))
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["failed"])[0]
        raise HostError(f"systemctl --user {verb[0]} {agent_unit(agent)}: {first}")
    return None


# ---------------------------------------------------------------- install


@dataclass(frozen=True)
class InstallResult:
    unit_dir: Path
    written: list[Path]
    to_enable: list[str]
    enabled: list[str]
    enable_skipped: str | None
    hint: str
    linger: bool | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "unit_dir": str(self.unit_dir),
            "written": [str(path) for path in self.written],
            "to_enable": self.to_enable,
            "enabled": self.enabled,
            "enable_skipped": self.enable_skipped,
            "hint": self.hint,
            "linger": self.linger,
        }


def write_units(units: dict[str, str], unit_dir: Path) -> list[Path]:
    """Write each unit atomically (a half-written unit would fail at the next boot)."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in units.items():
        path = unit_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def units_to_enable(settings: Settings, roster: Roster, beat: bool) -> list[str]:
    names = [TMUX_UNIT, WORKER_UNIT]
    if settings.broker_is_embedded:
        names.insert(0, BROKER_UNIT)
    if beat:
        names.append(BEAT_UNIT)
    if local_answering_agent(roster, settings) is not None:
        names.append(CONNECTOR_UNIT)
    return names + [agent_unit(name) for name in local_agents(settings, roster)]


def enable_units(names: list[str]) -> None:
    for args in (("daemon-reload",), ("enable", *names)):
        proc = _systemctl(*args)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["failed"])[0]
            raise HostError(f"systemctl --user {args[0]}: {first}")


def install_units(
    settings: Settings,
    roster: Roster,
    unit_dir: Path | None = None,
    enable: bool = False,
    beat: bool = True,
    fleet: Path | None = None,
) -> InstallResult:
    """Write the units; with ``enable``, enable them for the next boot when systemd allows."""
    units = render_units(settings, roster, fleet)
    target = (unit_dir or DEFAULT_UNIT_DIR).expanduser()
    if enable and target.absolute() != DEFAULT_UNIT_DIR.expanduser().absolute():
        raise UsageError(
            f"--enable needs the units in {DEFAULT_UNIT_DIR}, where systemd looks; not {target}"
        )
    written = write_units(units, target)
    to_enable = units_to_enable(settings, roster, beat)
    enabled: list[str] = []
    skipped: str | None = None
    if enable:
        skipped = user_manager_unavailable()
        if skipped is None:
            enable_units(to_enable)
            enabled = to_enable
    linger, why = linger_state()
    return InstallResult(
        target, written, to_enable, enabled, skipped, linger_hint(linger, why), linger
    )
