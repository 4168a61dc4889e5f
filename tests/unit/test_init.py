"""`fleet init`: non-interactive flags, the wizard on real stdin, and --reconfigure."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleet_queue import catalog
from fleet_queue.init_wizard import InitChoices, build_roster, reconfigure
from fleet_queue.roster import load_roster, parse_roster, write_roster
from tests.support.cli import FleetRun, run_fleet


def _ok(run: FleetRun) -> FleetRun:
    assert run.exit_code == 0, run.stderr
    return run


def _refused(run: FleetRun, expected: str, home: Path) -> None:
    assert run.exit_code == 2, run
    assert run.stderr.startswith(f"fleet: {expected}"), run.stderr
    assert run.stderr.count("\n") == 1
    assert not (home / "roster.yaml").exists(), "nothing may be written"


def test_init_profile_coding_write_then_validate(fleet_home: Path) -> None:
    run = _ok(run_fleet("init", "--profile", "coding", "--write"))
    path = fleet_home / "roster.yaml"
    assert run.stdout.strip() == f"wrote {path}: 5 agents (preset coding)"
    assert _ok(run_fleet("roster", "validate")).stdout.strip() == "ok: 5 agents"
    assert load_roster(path).preset == "coding"


@pytest.mark.parametrize("name", catalog.preset_names() + catalog.profile_names())
def test_every_template_writes_a_valid_roster(name: str, fleet_home: Path) -> None:
    _ok(run_fleet("init", "--profile", name, "--write"))
    roster = load_roster(fleet_home / "roster.yaml")
    assert roster.origin() in (f"profile {name}", f"preset {name}")
    _ok(run_fleet("roster", "validate"))


def test_preset_flag_picks_the_preset_when_a_profile_shares_the_name(fleet_home: Path) -> None:
    _ok(run_fleet("init", "--preset", "research", "--write"))
    assert load_roster(fleet_home / "roster.yaml").preset == "research"
    _ok(run_fleet("init", "--profile", "research", "--write", "--force"))
    assert load_roster(fleet_home / "roster.yaml").profile == "research"


def test_without_write_prints_and_writes_nothing(fleet_home: Path) -> None:
    run = _ok(
        run_fleet(
            "init",
            "--profile",
            "coding",
            "--runtime",
            "coder=pi",
            "--model",
            "coder=gpt-5",
            "--add",
            "helper=aux:stub",
        )
    )
    roster = parse_roster(yaml.safe_load(run.stdout))
    assert {a.runtime for a in roster.agents if a.agent_class == "coder"} == {"pi"}
    assert roster.agent("coder1").model_hint == "gpt-5"
    helper = roster.agent("helper")
    assert (helper.agent_class, helper.runtime) == ("aux", "stub")
    assert helper.reports_to == "orchestrator"
    assert not (fleet_home / "roster.yaml").exists()


def test_refuses_to_overwrite_without_force(fleet_home: Path) -> None:
    _ok(run_fleet("init", "--profile", "coding", "--write"))
    path = fleet_home / "roster.yaml"
    before = path.read_text()
    run = run_fleet("init", "--profile", "general", "--write")
    assert run.exit_code == 2
    assert run.stderr == (
        f"fleet: {path}: a roster already exists; nothing written (use --force"
        " to replace it, or --reconfigure to regenerate it)\n"
    )
    assert path.read_text() == before
    _ok(run_fleet("init", "--profile", "general", "--write", "--force"))
    assert load_roster(path).preset == "general"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--profile", "nope"], "unknown preset or profile 'nope' (known: business, coding"),
        (["--preset", "business"], "unknown preset 'business'"),
        (["--profile", "coding", "--preset", "general"], "--profile and --preset: choose one"),
        (
            ["--profile", "coding", "--runtime", "coder=zzz"],
            "--runtime coder=zzz: unknown runtime 'zzz' (known: claude, codex, opencode, pi, stub)",
        ),
        (
            ["--profile", "coding", "--runtime", "wizard=pi"],
            "--runtime wizard=…: no agent of class 'wizard' (classes: orchestrator, enhancer",
        ),
        (
            ["--profile", "coding", "--runtime", "coder"],
            "--runtime 'coder': expected CLASS=RUNTIME",
        ),
        (["--profile", "coding", "--model", "=x"], "--model '=x': expected CLASS=MODEL"),
        (
            ["--profile", "coding", "--remove", "orchestrator"],
            "--remove 'orchestrator': it is on the floor of preset coding",
        ),
        (
            ["--profile", "business", "--remove", "enhancer"],
            "--remove 'enhancer': it is on the floor of profile business",
        ),
        (["--profile", "coding", "--remove", "ghost"], "--remove 'ghost': no such agent"),
        (["--profile", "coding", "--add", "helper"], "--add 'helper': expected NAME=CLASS"),
        (
            ["--profile", "coding", "--add", "a.b=worker"],
            "preset coding: agent 'a.b': name: must match",
        ),
        (
            ["--profile", "coding", "--add", "coder0=coder"],
            "preset coding: agent 'coder0': name: duplicate agent name",
        ),
        (
            ["--profile", "coding", "--add", "boss=orchestrator"],
            "preset coding: agents: class: exactly one orchestrator is required, found 2",
        ),
        (
            ["--profile", "minimal", "--remove", "solo"],
            "preset minimal: agents: a roster needs at least one agent",
        ),
        (["--runtime", "coder=pi"], "--runtime/--model/--add/--remove need --profile or --preset"),
    ],
)
def test_invalid_choices_are_one_line_and_write_nothing(
    args: list[str], expected: str, fleet_home: Path
) -> None:
    _refused(run_fleet("init", *args, "--write"), expected, fleet_home)


WIZARD_ANSWERS = [
    "coding",  # configuration type
    "",
    "",  # orchestrator: runtime, model (keep)
    "",
    "",  # enhancer
    "pi",
    "gpt-5",  # coder
    "",
    "",  # reviewer
    "coder1",  # remove
    "helper",
    "aux",
    "stub",
    "",  # add one worker
    "",  # no more workers
    "y",  # write
]


def test_wizard_on_stdin_writes_a_valid_roster(fleet_home: Path) -> None:
    run = _ok(run_fleet("init", input="\n".join(WIZARD_ANSWERS) + "\n"))
    assert "Recommended agents" in run.stdout and "Always staffed" in run.stdout
    path = fleet_home / "roster.yaml"
    assert f"wrote {path}: 5 agents (preset coding)" in run.stdout
    roster = load_roster(path)
    assert roster.names() == ["orchestrator", "enhancer", "coder0", "reviewer0", "helper"]
    assert (roster.agent("coder0").runtime, roster.agent("coder0").model_hint) == ("pi", "gpt-5")
    assert roster.agent("helper").runtime == "stub"
    assert roster.agent("reviewer0").model_hint is None
    _ok(run_fleet("roster", "validate"))


def test_wizard_by_number_for_a_profile(fleet_home: Path) -> None:
    number = [t.name for t in catalog.list_templates()].index("personal-assistant") + 1
    agents = catalog.load_template("personal-assistant").roster.agents
    classes = len({a.agent_class for a in agents})
    answers = [str(number), *[""] * (2 * classes), "", "", "y"]
    _ok(run_fleet("init", input="\n".join(answers) + "\n"))
    roster = load_roster(fleet_home / "roster.yaml")
    assert roster.profile == "personal-assistant"
    assert roster.agent("personal-assistant").agent_class == "orchestrator"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["nope"], "unknown preset or profile 'nope'"),
        (["99"], "unknown preset or profile '99'"),
        (["coding", "zzz"], "runtime for orchestrator: unknown runtime 'zzz'"),
        (["coding", *[""] * 8, "orchestrator"], "--remove 'orchestrator': it is on the floor"),
        (
            ["coding", *[""] * 8, "", "x:y", "worker", "pi", "", ""],
            "preset coding: agent 'x:y': name: must match",
        ),
    ],
)
def test_wizard_refuses_a_bad_answer(answers: list[str], expected: str, fleet_home: Path) -> None:
    run = run_fleet("init", input="\n".join(answers) + "\n")
    assert run.exit_code == 2, run
    assert run.stderr.strip().startswith(f"fleet: {expected}"), run.stderr
    assert not (fleet_home / "roster.yaml").exists()


def test_wizard_declined_or_existing_writes_nothing(fleet_home: Path) -> None:
    answers = ["general", *[""] * 6, "", ""]
    run = _ok(run_fleet("init", input="\n".join([*answers, "n"]) + "\n"))
    assert "nothing written" in run.stdout
    assert not (fleet_home / "roster.yaml").exists()
    _ok(run_fleet("init", "--profile", "coding", "--write"))
    before = (fleet_home / "roster.yaml").read_text()
    run = run_fleet("init", input="\n".join([*answers, "y", "n"]) + "\n")
    assert run.exit_code == 1 and "kept as it was; nothing written" in run.stderr
    assert (fleet_home / "roster.yaml").read_text() == before
    _ok(run_fleet("init", "--force", input="\n".join([*answers, "y"]) + "\n"))
    assert load_roster(fleet_home / "roster.yaml").preset == "general"


def _edit(path: Path, edit: object) -> None:
    data = yaml.safe_load(path.read_text())
    assert callable(edit)
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _operator_edits(data: dict[str, object]) -> None:
    agents = data["agents"]
    assert isinstance(agents, list)
    by_name = {a["name"]: a for a in agents}
    by_name["coder0"]["model_hint"] = "gpt-9"  # a per-agent override
    by_name["reviewer0"]["host"] = "box2"  # another
    agents.remove(by_name["coder1"])  # a removal
    agents.append({"name": "mine", "runtime": "pi", "class": "helper"})  # an addition


def test_reconfigure_keeps_additions_overrides_and_removals(fleet_home: Path) -> None:
    path = fleet_home / "roster.yaml"
    _ok(run_fleet("init", "--profile", "coding", "--runtime", "coder=pi", "--write"))
    _edit(path, _operator_edits)
    run = _ok(run_fleet("init", "--reconfigure"))
    assert "kept your agents: mine" in run.stdout
    assert "kept your overrides: coder0.runtime, coder0.model_hint, reviewer0.host" in run.stdout
    assert "kept removed: coder1" in run.stdout
    roster = load_roster(path)
    assert roster.names() == ["orchestrator", "enhancer", "coder0", "reviewer0", "mine"]
    assert (roster.agent("coder0").runtime, roster.agent("coder0").model_hint) == ("pi", "gpt-9")
    assert roster.agent("reviewer0").host == "box2"
    assert roster.preset == "coding"
    _ok(run_fleet("roster", "validate"))


def test_reconfigure_onto_another_template_and_with_flags(fleet_home: Path) -> None:
    path = fleet_home / "roster.yaml"
    _ok(run_fleet("init", "--profile", "coding", "--write"))
    _edit(path, _operator_edits)
    run = _ok(
        run_fleet(
            "init", "--reconfigure", "--profile", "software-delivery", "--runtime", "helper=stub"
        )
    )
    assert "dropped (not in template): reviewer0" in run.stdout
    roster = load_roster(path)
    assert roster.profile == "software-delivery" and roster.preset is None
    assert "planner" in roster.names() and "reviewer0" not in roster.names()
    assert roster.agent("coder0").model_hint == "gpt-9"
    assert roster.agent("coder0").reports_to == "decomposition"  # template's, not an override
    assert "coder1" not in roster.names()
    assert roster.agent("mine").runtime == "stub"


def test_reconfigure_refusals_change_nothing(fleet_home: Path) -> None:
    path = fleet_home / "roster.yaml"
    _refused(run_fleet("init", "--reconfigure"), f"{path}: no roster here", fleet_home)
    hand = {
        "agents": [
            {"name": "boss", "runtime": "claude", "class": "orchestrator"},
            {"name": "fixer", "runtime": "claude", "class": "enhancer"},
        ]
    }
    path.write_text(yaml.safe_dump(hand))
    run = run_fleet("init", "--reconfigure")
    assert run.exit_code == 2
    assert run.stderr == (
        f"fleet: {path}: records no preset or profile; pass --preset or --profile to reconfigure\n"
    )
    run = run_fleet("init", "--reconfigure", "--preset", "coding")
    assert run.exit_code == 2 and "exactly one orchestrator is required, found 2" in run.stderr
    assert yaml.safe_load(path.read_text()) == hand


def test_reconfigure_adopts_a_hand_written_roster(fleet_home: Path) -> None:
    path = fleet_home / "roster.yaml"
    hand = {
        "agents": [
            {"name": "orchestrator", "runtime": "pi", "class": "orchestrator"},
            {"name": "enhancer", "runtime": "claude", "class": "enhancer"},
            {"name": "extra", "runtime": "codex", "class": "coder"},
        ]
    }
    path.write_text(yaml.safe_dump(hand))
    _ok(run_fleet("init", "--reconfigure", "--preset", "general"))
    roster = load_roster(path)
    assert roster.preset == "general"
    assert roster.names() == ["orchestrator", "enhancer", "worker0", "extra"]
    assert roster.agent("orchestrator").runtime == "pi"


def test_reconfigure_api_reports_each_kind_of_change() -> None:
    coding = catalog.load_template("coding")
    mine = build_roster(coding, InitChoices(remove=["coder1"], models={"reviewer": "m1"}))
    report = reconfigure(mine, catalog.load_template("hybrid"), coding)
    assert report.kept_out == []  # coder1 is not part of hybrid at all
    assert report.dropped == []
    assert report.overrides == ["reviewer0.model_hint"]
    assert report.new == ["researcher0"]
    assert report.roster.preset == "hybrid"
    assert "kept your overrides: reviewer0.model_hint" in report.summary()


def test_written_roster_is_the_one_validated(tmp_path: Path) -> None:
    roster = build_roster(catalog.load_template("local-canary"))
    write_roster(roster, tmp_path / "r.yaml")
    assert load_roster(tmp_path / "r.yaml") == roster
