"""The bad-input sweep: each bad input gives one clear line, a non-zero exit (or a typed
``FleetError`` from the Python API), no traceback, and changes nothing.

"Changes nothing" is checked by a dump of the fleet's state before and after: the
roster's bytes, every card with its status, and the list of files under ``FLEET_HOME``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.api import Backlog
from fleet_queue.errors import FleetError
from fleet_queue.settings import load_settings
from tests.support.cli import FleetRun, run_fleet

HOME_FILES_IGNORED = ("fleet.db-wal", "fleet.db-shm")


def _dump(home: Path) -> dict[str, Any]:
    listed = run_fleet("backlog", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    files = sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.name not in HOME_FILES_IGNORED and "tmux-" not in str(p)
    )
    return {
        "roster": (home / "roster.yaml").read_bytes(),
        "cards": json.loads(listed.stdout),
        "files": files,
    }


@pytest.fixture
def home(fleet_home: Path) -> Iterator[Path]:
    """A home with a roster and two cards; its dump must be the same after the test."""
    assert run_fleet("init", "--profile", "coding", "--write").exit_code == 0
    for extra in (["--id", "A1"], ["--id", "A2", "-d", "A1"]):
        made = run_fleet("backlog", "create", *extra, "--title", "a card")
        assert made.exit_code == 0, made.stderr
    before = _dump(fleet_home)
    yield fleet_home
    assert _dump(fleet_home) == before, "a refused input changed the fleet's state"


def _refused(run: FleetRun) -> str:
    """The one line the operator sees; asserts the contract of a refusal."""
    shown = run.stdout + run.stderr
    assert run.exit_code != 0, f"accepted: {shown}"
    assert "Traceback" not in shown, shown
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines, "refused without a word"
    if lines[0].startswith("fleet: "):
        assert len(lines) == 1, run.stderr
    else:  # Click's usage error: a usage line, then the error
        assert "Usage:" in run.stderr and ("Error" in run.stderr or "Invalid" in run.stderr)
    return lines[0]


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ---------------------------------------------------------------- the CLI

CLI_CASES: list[tuple[str, list[str]]] = [
    ("priority not a number", ["backlog", "create", "--title", "x", "--priority", "abc"]),
    ("priority a float", ["backlog", "create", "--title", "x", "--priority", "1.5"]),
    ("id with whitespace", ["backlog", "create", "--id", "bad id", "--title", "x"]),
    ("duplicate id", ["backlog", "create", "--id", "A1", "--title", "again"]),
    ("empty title", ["backlog", "create", "--id", "B1", "--title", ""]),
    ("title of control bytes", ["backlog", "create", "--id", "B1", "--title", "\x1b\x07"]),
    ("unknown dependency", ["backlog", "create", "--title", "x", "-d", "nope"]),
    ("self dependency", ["backlog", "create", "--id", "B1", "--title", "x", "-d", "B1"]),
    ("max attempts zero", ["backlog", "create", "--title", "x", "--max-attempts", "0"]),
    ("no title", ["backlog", "create", "--id", "B1"]),
    ("priority 2^63", ["backlog", "create", "--title", "x", "--priority", str(2**63)]),
    (
        "priority below int32",
        ["backlog", "create", "--title", "x", "--priority", str(-(2**31) - 1)],
    ),
    ("shell in the id", ["backlog", "create", "--id", "y$(touch${IFS}pwned)", "--title", "x"]),
    ("option-like id", ["backlog", "create", "--id=-rf", "--title", "x"]),
    ("quote in the id", ["backlog", "create", "--id", "a'b", "--title", "x"]),
    ("shell in a dependency", ["backlog", "create", "--title", "x", "-d", "a;b"]),
    ("agent name with a slash", ["backlog", "create", "--title", "x", "--agent", "../w1"]),
    ("body over the limit", ["backlog", "create", "--title", "x", "--body", "b" * 70_000]),
    ("unknown option", ["backlog", "create", "--title", "x", "--colour", "red"]),
    ("complete unclaimed", ["backlog", "complete", "A1", "--token", "1"]),
    ("complete unknown", ["backlog", "complete", "nope", "--token", "1"]),
    ("token not a number", ["backlog", "complete", "A1", "--token", "x"]),
    ("fail without reason", ["backlog", "fail", "A1", "--token", "1"]),
    ("token 2^63", ["backlog", "complete", "A1", "--token", str(2**63)]),
    ("token negative", ["backlog", "fail", "A1", "--token", "-1", "--reason", "x"]),
    ("lease ttl inf", ["backlog", "claim", "--agent", "coder-1", "--ttl", "inf"]),
    ("lease ttl over a year", ["backlog", "renew", "A1", "--token", "1", "--ttl", "1e12"]),
    ("show unknown", ["backlog", "show", "nope"]),
    ("list bad status", ["backlog", "list", "--status", "bogus"]),
    ("link to itself", ["backlog", "link", "A1", "A1"]),
    ("link unknown", ["backlog", "link", "A1", "nope"]),
    ("link cycle", ["backlog", "link", "A1", "A2"]),
    ("import missing file", ["backlog", "import", "/nonexistent/cards.yaml"]),
    ("init unknown profile", ["init", "--profile", "nosuch", "--write"]),
    ("init over a roster", ["init", "--profile", "coding", "--write"]),
    ("unknown command", ["nosuch"]),
    ("home is a file", ["--home", "/etc/hostname", "config"]),
    ("claim for an agent not in the roster", ["backlog", "claim", "--agent", "nosuch"]),
    (
        "agent and class together",
        ["backlog", "create", "--title", "x", "--agent", "coder0", "--class", "coder"],
    ),
    ("lease ttl nan", ["backlog", "claim", "--agent", "coder0", "--ttl", "nan"]),
    ("renew ttl nan", ["backlog", "renew", "A1", "--token", "1", "--ttl", "nan"]),
]


@pytest.mark.parametrize(("name", "args"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses(home: Path, name: str, args: list[str]) -> None:
    _refused(run_fleet(*args))


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["backlog", "claim", "--agent", "nosuch"], 3, "not in the roster"),
        (["backlog", "create", "--title", "x", "--agent", "coder0", "--class", "coder"], 2,
         "not both"),
    ],
)  # fmt: skip
def test_refusals_name_the_reason_with_their_exit_code(
    home: Path, args: list[str], code: int, says: str
) -> None:
    run = run_fleet(*args)
    assert run.exit_code == code and says in _refused(run)


def test_a_sqlite_url_with_a_typo_creates_nothing(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typo = tmp_path / "no-such-dir" / "sub"
    with monkeypatch.context() as env:
        env.setenv("FLEET_DATABASE_URL", f"sqlite:///{typo}/fleet.db")
        line = _refused(run_fleet("backlog", "list"))
    assert "FLEET_DATABASE_URL" in line and "does not exist" in line
    assert not (tmp_path / "no-such-dir").exists()


# ---------------------------------------------------------------- imports

IMPORT_CASES: list[tuple[str, str, str | bytes]] = [
    ("binary jsonl", "cards.jsonl", b"\xff\xfe\x00garbage\x80"),
    ("binary yaml", "cards.yaml", b"\xff\xfe\x00garbage\x80"),
    ("not yaml", "cards.yaml", "- id: [unclosed\n"),
    ("a mapping of nothing", "cards.yaml", "hello: world\n"),
    ("a scalar", "cards.yaml", "42\n"),
    ("an item not a mapping", "cards.yaml", "- just text\n"),
    ("priority 1.5", "cards.yaml", "- {id: I1, title: t, priority: 1.5}\n"),
    ("priority 2^63", "cards.yaml", f"- {{id: I1, title: t, priority: {2**63}}}\n"),
    ("priority a word", "cards.yaml", "- {id: I1, title: t, priority: high}\n"),
    ("title null", "cards.yaml", "- {id: I1, title: null}\n"),
    ("title a list", "cards.yaml", "- {id: I1, title: [a, b]}\n"),
    ("no title", "cards.yaml", "- {id: I1}\n"),
    ("unknown field", "cards.yaml", "- {id: I1, title: t, colour: red}\n"),
    ("shell in the id", "cards.yaml", "- {id: 'y$(touch${IFS}pwned)', title: t}\n"),
    ("slash in the id", "cards.yaml", "- {id: a/b, title: t}\n"),
    ("max_attempts 0", "cards.yaml", "- {id: I1, title: t, max_attempts: 0}\n"),
    ("max_attempts text", "cards.yaml", "- {id: I1, title: t, max_attempts: many}\n"),
    ("dependency cycle", "cards.yaml", "- {id: I1, title: t, depends_on: [I2]}\n"
     "- {id: I2, title: t, depends_on: [I1]}\n"),
    ("unknown dependency", "cards.yaml", "- {id: I1, title: t, depends_on: [nope]}\n"),
    ("duplicate in batch", "cards.yaml", "- {id: I1, title: t}\n- {id: I1, title: u}\n"),
    ("existing id", "cards.yaml", "- {id: A1, title: t}\n"),
    ("second item bad", "cards.yaml", "- {id: I1, title: t}\n- {id: I2, title: ''}\n"),
    ("jsonl bad line", "cards.jsonl", '{"id": "I1", "title": "t"}\n{"id": \n'),
    ("jsonl not an object", "cards.jsonl", "[1, 2]\n"),
    ("goal priority word", "goals.yaml", "goals:\n  - {id: G1, title: t, priority: urgent}\n"),
    ("goals not a list", "goals.yaml", "goals: 7\n"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "filename", "content"), IMPORT_CASES, ids=[c[0] for c in IMPORT_CASES]
)
def test_imports_refuse(
    home: Path, tmp_path: Path, name: str, filename: str, content: str | bytes
) -> None:
    path = _write(tmp_path / filename, content)
    _refused(run_fleet("backlog", "import", str(path)))


def test_importing_a_directory_is_refused(home: Path, tmp_path: Path) -> None:
    _refused(run_fleet("backlog", "import", str(tmp_path)))


# ---------------------------------------------------------------- settings

SETTINGS_CASES: list[tuple[str, str]] = [
    ("FLEET_LEASE_TTL", "inf"),
    ("FLEET_LEASE_TTL", "nan"),
    ("FLEET_LEASE_TTL", "-1"),
    ("FLEET_LEASE_TTL", "1e300"),
    ("FLEET_LEASE_TTL", "ten minutes"),
    ("FLEET_HEARTBEAT_INTERVAL", "0"),
    ("FLEET_TICK_INTERVAL", "-inf"),
    ("FLEET_CARD_TIMEOUT", "nan"),
    ("FLEET_MAX_ATTEMPTS", "0"),
    ("FLEET_MAX_ATTEMPTS", "1.5"),
    ("FLEET_MAX_ATTEMPTS", str(2**63)),
    ("FLEET_MAX_CARD_BYTES", "-5"),
    ("FLEET_NUDGE", "maybe"),
    ("FLEET_TENANT", "acme.x"),
    ("FLEET_TENANT", "a b"),
    ("FLEET_TENANT", ""),
    ("FLEET_HOST", "a/b"),
    ("FLEET_HOST", "a..b"),
    ("FLEET_HOST", "-h"),
    ("FLEET_TMUX_SOCKET", "../../../x"),
    ("FLEET_BROKER_URL", "not a url"),
    ("FLEET_BROKER_URL", "localhost:6379"),
    ("FLEET_BROKER_URL", "redis://hub:99999/0"),
    ("FLEET_DATABASE_URL", "fleet.db"),
    ("FLEET_HOME", "/etc/hostname"),
    ("FLEET_ROSTER_PATH", "/etc"),
]


@pytest.mark.parametrize(("variable", "value"), SETTINGS_CASES)
def test_settings_refuse(
    home: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    with monkeypatch.context() as env:  # undone before the dump after the test
        env.setenv(variable, value)
        with pytest.raises(FleetError) as caught:
            load_settings()
        line = _refused(run_fleet("config"))
    assert caught.value.message.startswith(variable) and "\n" not in caught.value.message
    assert variable in line


def test_an_unreadable_fleet_env_is_refused(home: Path) -> None:
    env_file = home / "fleet.env"
    env_file.write_bytes(b"FLEET_TENANT=\xff\xfe\n")
    env_file.chmod(0o600)
    try:
        _refused(run_fleet("config"))
    finally:
        env_file.unlink()


# ---------------------------------------------------------------- rosters

ROSTER_CASES: list[tuple[str, str | bytes]] = [
    ("binary", b"\x00\xff\xfe\x80 roster"),
    ("not yaml", "agents: [unclosed\n"),
    ("a list", "- a\n- b\n"),
    ("no agents", "version: 1\nagents: []\n"),
    ("unknown key", "version: 1\ncolour: red\nagents: []\n"),
    ("socket outside run", "preset: minimal\ntmux: {socket_name: ../../../x}\n"
     "agents: [{name: w1, runtime: stub, class: coder}]\n"),
    ("holder with a path", "preset: minimal\ntmux: {holder_session: ../h}\n"
     "agents: [{name: w1, runtime: stub, class: coder}]\n"),
    ("tenant with a dot", "preset: minimal\n"
     "agents: [{name: w1, runtime: stub, class: coder, tenant_id: a.b}]\n"),
    ("host with a slash", "preset: minimal\n"
     "agents: [{name: w1, runtime: stub, class: coder, host: a/b}]\n"),
    ("agent name with a dot", "preset: minimal\n"
     "agents: [{name: w.1, runtime: stub, class: coder}]\n"),
    ("duplicate agent", "preset: minimal\nagents: [{name: w1, runtime: stub, class: c},"
     " {name: w1, runtime: stub, class: c}]\n"),
    ("unknown runtime", "preset: minimal\nagents: [{name: w1, runtime: nosuch, class: c}]\n"),
    ("literal DB_PASS", "preset: minimal\n"
     "agents: [{name: w1, runtime: stub, class: c, env: {DB_PASS: hunter2}}]\n"),
    ("URL with a password", "preset: minimal\nagents: [{name: w1, runtime: stub, class: c,"
     " env: {DB: 'postgresql://u:pw@db/x'}}]\n"),
    ("reports_to cycle", "preset: minimal\nagents: [{name: a, runtime: stub, class: c,"
     " reports_to: b}, {name: b, runtime: stub, class: c, reports_to: a}]\n"),
    ("no orchestrator", "agents: [{name: w1, runtime: stub, class: coder}]\n"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content"), ROSTER_CASES, ids=[c[0] for c in ROSTER_CASES])
def test_rosters_refuse(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: str | bytes
) -> None:
    path = _write(tmp_path / "roster.yaml", content)
    with monkeypatch.context() as env:
        env.setenv("FLEET_ROSTER_PATH", str(path))
        line = _refused(run_fleet("roster", "validate"))
    assert str(path) in line


def test_a_roster_that_is_a_directory_is_refused(home: Path) -> None:
    (home / "roster.yaml").rename(home / "roster.keep")
    (home / "roster.yaml").mkdir()
    try:
        _refused(run_fleet("roster", "validate"))
    finally:
        (home / "roster.yaml").rmdir()
        (home / "roster.keep").rename(home / "roster.yaml")


# ---------------------------------------------------------------- the Python API

API_CASES: list[tuple[str, Callable[[Backlog], object]]] = [
    ("id with whitespace", lambda b: b.create("a b", "t")),
    ("empty title", lambda b: b.create("B1", "  ")),
    ("duplicate id", lambda b: b.create("A1", "t")),
    ("priority float", lambda b: b.create("B1", "t", priority=1.5)),  # type: ignore[arg-type]
    ("priority text", lambda b: b.create("B1", "t", priority="5")),  # type: ignore[arg-type]
    ("unknown dependency", lambda b: b.create("B1", "t", depends_on=["nope"])),
    ("max attempts zero", lambda b: b.create("B1", "t", max_attempts=0)),
    ("title None", lambda b: b.create("B1", None)),  # type: ignore[arg-type]
    ("priority 2^63", lambda b: b.create("B1", "t", priority=2**63)),
    ("shell in the id", lambda b: b.create("y$(touch${IFS}pwned)", "t")),
    ("max attempts 2^63", lambda b: b.create("B1", "t", max_attempts=2**63)),
    ("body over the limit", lambda b: b.create("B1", "t", body="b" * 70_000)),
    (
        "bulk body over the limit",
        lambda b: b.create_many([{"id": "B1", "title": "t", "body": "b" * 70_000}]),
    ),
    ("bulk without title", lambda b: b.create_many([{"id": "B1"}])),
    ("bulk unknown field", lambda b: b.create_many([{"id": "B1", "title": "t", "x": 1}])),
    ("bulk duplicate", lambda b: b.create_many([{"id": "B1", "title": "t"}] * 2)),
    ("import missing", lambda b: b.import_file("/nonexistent.yaml")),
    ("complete unknown", lambda b: b.complete("nope", 1)),
    ("complete unclaimed", lambda b: b.complete("A1", 1)),
    ("fail unknown", lambda b: b.fail("nope", 1, "why")),
    ("get unknown", lambda b: b.get("nope")),
    ("list bogus status", lambda b: b.list(status="bogus")),
    ("acceptance not JSON", lambda b: b.create("B1", "t", acceptance=object())),
    ("acceptance nan", lambda b: b.create("B1", "t", acceptance={"x": float("nan")})),
    ("bulk priority 1.5", lambda b: b.create_many([{"id": "B1", "title": "t", "priority": 1.5}])),
    ("complete token 2^63", lambda b: b.complete("A1", 2**63)),
    ("fail token 2^63", lambda b: b.fail("A1", 2**63, "why")),
    ("complete token text", lambda b: b.complete("A1", "1")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("name", "call"), API_CASES, ids=[c[0] for c in API_CASES])
def test_the_python_api_refuses_with_a_typed_error(
    home: Path, name: str, call: Callable[[Backlog], object]
) -> None:
    with Backlog() as backlog, pytest.raises(FleetError) as caught:
        call(backlog)
    message = caught.value.message
    assert message and "\n" not in message and "Traceback" not in message
