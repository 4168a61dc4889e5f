"""The roster model and `fleet roster`: one bad roster per rule, each refused in one line."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_queue.errors import RosterError
from fleet_queue.roster import Roster, load_roster, parse_roster, roster_json_schema, write_roster
from tests.support.cli import run_fleet

BASE: dict[str, Any] = {
    "version": 1,
    "agents": [
        {"name": "orchestrator", "runtime": "claude", "class": "orchestrator"},
        {
            "name": "enhancer",
            "runtime": "claude",
            "class": "enhancer",
            "reports_to": "orchestrator",
        },
        {"name": "coder0", "runtime": "codex", "class": "coder", "reports_to": "orchestrator"},
    ],
}

Edit = Callable[[dict[str, Any]], None]


def _agent(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in data["agents"] if a["name"] == name)


def _set(agent: str, **fields: Any) -> Edit:
    return lambda data: _agent(data, agent).update(fields)


def _append(**agent: Any) -> Edit:
    return lambda data: data["agents"].append(agent)


def _drop(name: str) -> Edit:
    return lambda data: data["agents"].remove(_agent(data, name))


BAD: list[tuple[str, Edit, str]] = [
    (
        "two orchestrators",
        _append(name="orch2", runtime="pi", **{"class": "orchestrator"}),
        "agents: class: exactly one orchestrator is required, found 2 (orchestrator, orch2)",
    ),
    (
        "no orchestrator",
        _set("orchestrator", **{"class": "planner"}),
        "agents: class: exactly one orchestrator is required, found 0 (none)",
    ),
    (
        "no enhancer",
        _drop("enhancer"),
        "agents: class: at least one enhancer is required, found none",
    ),
    (
        "duplicate names",
        _append(name="coder0", runtime="pi", **{"class": "coder"}),
        "agent 'coder0': name: duplicate agent name",
    ),
    ("dot in name", _set("coder0", name="coder.0"), "agent 'coder.0': name: must match"),
    ("colon in name", _set("coder0", name="coder:0"), "agent 'coder:0': name: must match"),
    (
        "unknown runtime",
        _set("coder0", runtime="zzz"),
        "agent 'coder0': runtime: unknown runtime 'zzz' with no command",
    ),
    (
        "declared runtime without command",
        lambda d: (
            d.update(runtimes={"mine": {"reset_command": "/new"}}),
            _set("coder0", runtime="mine")(d),
        ),
        "agent 'coder0': runtime: unknown runtime 'mine' with no command",
    ),
    (
        "reports_to unknown",
        _set("coder0", reports_to="nobody"),
        "agent 'coder0': reports_to: 'nobody' is not an agent",
    ),
    (
        "reports_to self",
        _set("coder0", reports_to="coder0"),
        "agent 'coder0': reports_to: an agent cannot report to itself",
    ),
    (
        "reports_to two-agent cycle",
        _set("orchestrator", reports_to="coder0"),
        "agent 'orchestrator': reports_to: cycle orchestrator -> coder0 -> orchestrator",
    ),
    (
        "reports_to three-agent cycle",
        lambda d: (
            _set("orchestrator", reports_to="enhancer")(d),
            _set("enhancer", reports_to="coder0")(d),
        ),
        "reports_to: cycle orchestrator -> enhancer -> coder0 -> orchestrator",
    ),
    (
        "reports_to chain into a cycle",
        lambda d: (
            _set("coder0", reports_to="coder1")(d),
            _append(name="coder1", runtime="pi", reports_to="coder2", **{"class": "coder"})(d),
            _append(name="coder2", runtime="pi", reports_to="coder1", **{"class": "coder"})(d),
        ),
        "agent 'coder1': reports_to: cycle coder1 -> coder2 -> coder1",
    ),
    (
        "secret in env",
        _set("coder0", env={"OPENAI_API_KEY": "sk-live-123"}),
        "agent 'coder0': env.OPENAI_API_KEY: secrets never live in the roster",
    ),
    (
        "unknown field",
        _set("coder0", colour="red"),
        "agent 'coder0': colour: Extra inputs are not permitted",
    ),
    (
        "missing runtime",
        lambda d: _agent(d, "coder0").pop("runtime"),
        "agent 'coder0': runtime: Field required",
    ),
    ("bad transport", lambda d: d.update(transport="carrier-pigeon"), "transport: Input should be"),
]


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "r" / "roster.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


def _refused(path: Path, expected: str) -> None:
    """One line on stderr naming the file, exit 2, and the directory left as it was."""
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    run = run_fleet("roster", "validate", str(path))
    assert run.exit_code == 2, run
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"fleet: {path}: "), lines[0]
    assert expected in lines[0], lines[0]
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before


@pytest.mark.parametrize(("case", "edit", "expected"), BAD, ids=[b[0] for b in BAD])
def test_each_rule_is_refused_in_one_line(
    tmp_path: Path, case: str, edit: Edit, expected: str
) -> None:
    data = copy.deepcopy(BASE)
    edit(data)
    _refused(_write(tmp_path, data), expected)


def test_base_roster_is_valid(tmp_path: Path) -> None:
    run = run_fleet("roster", "validate", str(_write(tmp_path, BASE)))
    assert (run.exit_code, run.stdout.strip()) == (0, "ok: 3 agents")


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: (
            d.update(runtimes={"mine": {"command": "my-agent --tty"}}),
            _set("coder0", runtime="mine")(d),
        ),
        _set("coder0", runtime="aider", command="aider --yes"),
        _set("coder0", env={"OPENAI_API_KEY": "${OPENAI_API_KEY}", "LANG": "C.UTF-8"}),
        lambda d: (
            _set("coder0", reports_to="enhancer")(d),
            _append(name="coder1", runtime="pi", reports_to="coder0", **{"class": "coder"})(d),
        ),
    ],
    ids=[
        "declared runtime with command",
        "agent command override",
        "secret as ${VAR}",
        "reports_to chain without a cycle",
    ],
)
def test_allowed_variants(tmp_path: Path, edit: Edit) -> None:
    data = copy.deepcopy(BASE)
    edit(data)
    run = run_fleet("roster", "validate", str(_write(tmp_path, data)))
    assert run.exit_code == 0, run.stderr


def test_minimal_preset_is_exempt_from_the_floor(tmp_path: Path) -> None:
    data = {"preset": "minimal", "agents": [{"name": "solo", "runtime": "pi", "class": "worker"}]}
    assert run_fleet("roster", "validate", str(_write(tmp_path, data))).exit_code == 0
    data["preset"] = "coding"
    _refused(_write(tmp_path, data), "exactly one orchestrator is required, found 0")


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    text = "version: 1\nagents:\n  - name: a\n    runtime: [claude\n"
    path = _write(tmp_path, text)
    _refused(path, "line 5")
    assert "not valid YAML" in run_fleet("roster", "validate", str(path)).stderr


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("", "NoneType")])
def test_non_mapping_is_refused(tmp_path: Path, text: str, kind: str) -> None:
    _refused(_write(tmp_path, text), f"the roster must be a mapping, got {kind}")


def test_missing_file_is_refused_with_a_hint(fleet_home: Path) -> None:
    run = run_fleet("roster", "validate")
    assert run.exit_code == 2
    expected = f"fleet: {fleet_home / 'roster.yaml'}: no roster here (run `fleet init`)"
    assert run.stderr.strip() == expected


def test_parse_roster_raises_roster_error_with_source() -> None:
    data = copy.deepcopy(BASE)
    _drop("enhancer")(data)
    with pytest.raises(RosterError, match=r"^mine\.yaml: agents: class: at least one enhancer"):
        parse_roster(data, "mine.yaml")


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    _set("coder0", model_hint="gpt-5", env={"LANG": "C"}, host="box2")(data)
    roster = parse_roster(data)
    path = tmp_path / "deep" / "roster.yaml"
    write_roster(roster, path)
    assert load_roster(path) == roster
    text = path.read_text()
    assert text.startswith("version: 1\ntransport: tmux\n")
    assert "persistent_persona" not in text  # defaults are not written
    assert [p.name for p in path.parent.iterdir()] == ["roster.yaml"]


def test_show_json_and_table(fleet_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich would otherwise truncate cells at 80
    data = copy.deepcopy(BASE)
    _set("coder0", model_hint="gpt-5", host="box2", tenant_id="acme")(data)
    write_roster(parse_roster(data), fleet_home / "roster.yaml")
    run = run_fleet("roster", "show", "--json")
    assert run.exit_code == 0, run.stderr
    shown = json.loads(run.stdout)
    assert [a["name"] for a in shown["agents"]] == ["orchestrator", "enhancer", "coder0"]
    assert shown["agents"][2]["class"] == "coder"
    assert shown["agents"][2]["tenant_id"] == "acme"
    table = run_fleet("roster", "show").stdout
    for word in ("coder0", "gpt-5", "box2", "acme", "reports_to", "orchestrator"):
        assert word in table


def test_shipped_schema_is_current() -> None:
    shipped = json.loads(files("fleet_queue").joinpath("data/roster.schema.json").read_text())
    hint = "regenerate: fleet roster schema > fleet_queue/data/roster.schema.json"
    assert shipped == roster_json_schema(), hint
    run = run_fleet("roster", "schema")
    assert json.loads(run.stdout) == shipped
    fields = set(shipped["$defs"]["AgentSpec"]["properties"])
    assert fields >= {"name", "class", "reports_to", "env", "role"}


def test_roster_model_helpers() -> None:
    roster = Roster.model_validate(BASE)
    assert roster.names() == ["orchestrator", "enhancer", "coder0"]
    assert roster.agent("coder0").host_or("here") == "here"
    with pytest.raises(RosterError, match="unknown agent 'x'"):
        roster.agent("x")
