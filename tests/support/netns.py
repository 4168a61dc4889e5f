"""A private network of Linux namespaces for multi-host tests: a hub and N hosts.

Each run gets its own namespaces (``fqt<pid>x<rand>-<label>``) joined by veth
pairs to a bridge inside the hub namespace, on ``10.231.0.0/24``. That subnet
exists only inside these namespaces: the veth pairs are created *inside* the
hub namespace (the peer moved straight into its host namespace), so the root
namespace never sees an interface, an address or a route of ours.

The hub runs Redis and PostgreSQL bound to the hub address (fixed ports: a
namespace has no neighbours to collide with). The test process itself stays in
the root namespace and reaches the same servers through their unix sockets,
which are files, not addresses.

Teardown always runs: every process inside our namespaces is killed by pid
(``ip netns pids``), then the namespaces are deleted. Namespaces left by a
run that died (its creator pid gone) are removed at the next start.

Needs root plus ``ip`` (iproute2) and ``unshare`` (util-linux); without them
this fails loudly instead of skipping.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import pg_bin

SUBNET = "10.231.0"
PREFIX_LEN = 24
HUB_LABEL = "hub"
REDIS_PORT = 6379
PG_PORT = 5432
_NAME_RE = re.compile(r"^fqt(\d+)x[0-9a-f]+-")
_KILL_TIMEOUT = 10.0


class NetnsUnavailable(RuntimeError):
    """This machine cannot build the network (not root, or a tool is missing)."""


def require_netns_tools() -> None:
    """Fail loudly when the test cannot run here; CI runs as root with the tools."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespace tests need root (CI runs them as root)")
    missing = [tool for tool in ("ip", "unshare", "runuser") if shutil.which(tool) is None]
    if missing:
        raise NetnsUnavailable(
            f"missing {', '.join(missing)}: apt-get install iproute2 util-linux"
            " (scripts/test.sh does)"
        )


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


@dataclass(frozen=True)
class Namespace:
    """One network namespace of ours: a name for ``ip netns`` and its address."""

    name: str
    label: str
    address: str

    def argv(self, command: Sequence[str], hostname: str | None = None) -> list[str]:
        """``command`` run inside this namespace, in a fresh UTS namespace named
        ``hostname`` when given (so the kernel hostname is the host's own)."""
        wrapped = ["ip", "netns", "exec", self.name]
        if hostname is None:
            return [*wrapped, *command]
        script = 'hostname "$0" && exec "$@"'
        return [*wrapped, "unshare", "--uts", "--", "sh", "-c", script, hostname, *command]

    def run(
        self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
        hostname: str | None = None, timeout: float = 60.0, check: bool = True,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        proc = subprocess.run(
            self.argv(command, hostname), env=dict(env) if env is not None else None,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"in {self.label}: {' '.join(command)} exited {proc.returncode}:"
                f" {(proc.stdout + proc.stderr).strip()[-2000:]}"
            )
        return proc

    def popen(
        self, command: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None,
        hostname: str | None = None,
    ) -> subprocess.Popen[bytes]:  # fmt: skip
        """A long-running process inside the namespace, its output appended to ``log``.

        ``ip netns exec``, ``unshare`` and ``sh`` all exec, so the pid returned is
        the command's own: a ``kill -9`` of it kills exactly that process.
        """
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            return subprocess.Popen(
                self.argv(command, hostname), env=dict(env) if env is not None else None,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def pids(self) -> list[int]:
        try:
            out = _ip("netns", "pids", self.name)
        except RuntimeError:
            return []
        return [int(pid) for pid in out.split()]


@dataclass
class Network:
    """The hub and the hosts, by label (``hub``, ``hosta``...)."""

    hub: Namespace
    hosts: dict[str, Namespace]
    run_id: str

    @property
    def all(self) -> list[Namespace]:
        return [*self.hosts.values(), self.hub]


def _new_run_id() -> str:
    return f"fqt{os.getpid()}x{secrets.token_hex(3)}"


def kill_namespace_processes(ns_name: str, timeout: float = _KILL_TIMEOUT) -> None:
    """SIGKILL every process in the namespace, by pid, until none is left."""
    space = Namespace(ns_name, ns_name, "")
    deadline = time.monotonic() + timeout
    while pids := space.pids():
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in namespace {ns_name} survive SIGKILL")
        time.sleep(0.05)


def _delete_namespace(ns_name: str) -> None:
    kill_namespace_processes(ns_name)
    subprocess.run(["ip", "netns", "del", ns_name], capture_output=True, check=False)


def remove_orphans() -> list[str]:
    """Delete namespaces of ours whose creating test process is gone."""
    removed = []
    for line in _ip("netns", "list").splitlines():
        name = line.split(" ", 1)[0]
        match = _NAME_RE.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        _delete_namespace(name)
        removed.append(name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _build(net: Network) -> None:
    hub = net.hub.name
    for space in net.all:
        _ip("netns", "add", space.name)
        _ip("-n", space.name, "link", "set", "lo", "up")
    _ip("-n", hub, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
    _ip("-n", hub, "addr", "add", f"{net.hub.address}/{PREFIX_LEN}", "dev", "br0")
    _ip("-n", hub, "link", "set", "br0", "up")
    for index, host in enumerate(net.hosts.values()):
        port = f"vh{index}"
        # Created inside the hub, the peer goes straight into the host: never in the root ns.
        _ip("-n", hub, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", host.name)  # fmt: skip
        _ip("-n", hub, "link", "set", port, "master", "br0")
        _ip("-n", hub, "link", "set", port, "up")
        _ip("-n", host.name, "addr", "add", f"{host.address}/{PREFIX_LEN}", "dev", "eth0")
        _ip("-n", host.name, "link", "set", "eth0", "up")


@contextmanager
def namespace_network(hosts: Sequence[str] = ("hosta", "hostb")) -> Iterator[Network]:
    """Build hub + hosts; always tear everything down, whatever happened inside."""
    require_netns_tools()
    remove_orphans()
    run_id = _new_run_id()
    net = Network(
        hub=Namespace(f"{run_id}-{HUB_LABEL}", HUB_LABEL, f"{SUBNET}.1"),
        hosts={
            label: Namespace(f"{run_id}-{label}", label, f"{SUBNET}.{index + 2}")
            for index, label in enumerate(hosts)
        },
        run_id=run_id,
    )
    try:
        _build(net)
        yield net
    finally:
        errors = []
        for space in net.all:
            try:
                _delete_namespace(space.name)
            except RuntimeError as exc:
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))


def wait_for_tcp(space: Namespace, address: str, port: int, timeout: float = 20.0) -> None:
    """Poll a TCP connect from inside ``space`` (the test process cannot reach it)."""
    probe = (
        "import socket,sys,time\n"
        f"end=time.monotonic()+{timeout}\n"
        "while True:\n"
        "    try:\n"
        f"        socket.create_connection(('{address}',{port}),timeout=0.5).close(); break\n"
        "    except OSError:\n"
        "        if time.monotonic()>end: sys.exit(f'nothing listens on {address}:{port}')\n"
        "        time.sleep(0.05)\n"
    )
    space.run([sys.executable, "-c", probe], timeout=timeout + 10)


@dataclass
class HubServers:
    """Redis and PostgreSQL in the hub: TCP URLs for the hosts, unix sockets for the test.

    Redis has a password, as a hub reachable from other machines must (and a
    password keeps it out of Redis's loopback-only protected mode).
    """

    address: str
    workdir: Path
    redis_socket: Path
    pg_socket_dir: Path
    redis_password: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def broker_url(self) -> str:
        """What a host worker uses: the hub's address inside the private subnet."""
        return f"redis://:{self.redis_password}@{self.address}:{REDIS_PORT}/0"

    def database_url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.address}:{PG_PORT}/{database}"

    @property
    def local_redis_url(self) -> str:
        """The same Redis for the test process, through its unix socket."""
        return f"unix://:{self.redis_password}@{self.redis_socket}?db=0"

    def local_database_url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.pg_socket_dir}&port={PG_PORT}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(
            host=str(self.pg_socket_dir), port=PG_PORT, user="postgres", dbname="postgres",
            autocommit=True,
        ) as conn:  # fmt: skip
            conn.execute(f'CREATE DATABASE "{name}"')


def _start_redis(hub: Namespace, servers: HubServers) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise NetnsUnavailable("redis-server is not installed (apt-get install redis-server)")
    command = [
        binary, "--bind", hub.address, "--port", str(REDIS_PORT),
        "--unixsocket", str(servers.redis_socket), "--unixsocketperm", "700",
        "--dir", str(servers.workdir), "--appendonly", "yes", "--save", "",
        "--maxmemory-policy", "noeviction", "--daemonize", "no",
        "--requirepass", servers.redis_password,
    ]  # fmt: skip
    servers.processes.append(hub.popen(command, servers.workdir / "redis.log"))
    wait_for_tcp(hub, hub.address, REDIS_PORT)


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command]


def _start_postgres(hub: Namespace, servers: HubServers) -> Path:
    base = servers.pg_socket_dir
    datadir = base / "data"
    shutil.chown(base, "postgres", "postgres")
    hub.run(_as_postgres([
        pg_bin("initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust", "--no-sync",
        "-E", "UTF8",
    ]))  # fmt: skip
    with (datadir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
        # The hosts connect over the private subnet; nothing else can reach it.
        hba.write(f"host all all {SUBNET}.0/{PREFIX_LEN} trust\n")
    opts = (
        f"-c listen_addresses={hub.address} -p {PG_PORT} -c unix_socket_directories={base}"
        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    hub.run(_as_postgres([
        pg_bin("pg_ctl"), "-D", str(datadir), "-o", opts, "-l", str(base / "log"), "-w", "start",
    ]))  # fmt: skip
    wait_for_tcp(hub, hub.address, PG_PORT)
    return datadir


@contextmanager
def hub_servers(net: Network) -> Iterator[HubServers]:
    """Redis + PostgreSQL running inside the hub namespace, bound to the hub address."""
    hub = net.hub
    workdir = Path(tempfile.mkdtemp(prefix=f"{net.run_id}-hub-"))
    pg_dir = Path(tempfile.mkdtemp(prefix=f"{net.run_id}-pg-"))
    servers = HubServers(
        hub.address, workdir, workdir / "redis.sock", pg_dir, secrets.token_hex(12)
    )
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, pg_dir, True)
        stack.callback(shutil.rmtree, workdir, True)
        stack.callback(_stop_processes, servers.processes)
        _start_redis(hub, servers)
        datadir = _start_postgres(hub, servers)
        stack.callback(
            subprocess.run,
            _as_postgres([pg_bin("pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"]),
            capture_output=True, check=False,
        )  # fmt: skip
        yield servers


def _stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=_KILL_TIMEOUT)
