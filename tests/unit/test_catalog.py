"""The shipped catalog: every preset, profile and role loads, validates and is listed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_queue import catalog
from fleet_queue.errors import ConfigError
from fleet_queue.roster import ENHANCER, ORCHESTRATOR, Roster
from tests.support.cli import run_fleet

LIBRARY = {
    "engineering": {
        "board",
        "planner",
        "decomposition",
        "code",
        "review",
        "security-review",
        "site-tester",
        "documentation",
        "merge-gate",
        "rebase",
        "operator",
        "session-review",
        "enhancer",
        "orchestrator",
    },
    "executive": {"ceo", "coo", "cfo", "cto", "chief-of-staff"},
    "product": {"product-manager", "ux-designer", "user-researcher"},
    "marketing": {
        "marketing-lead",
        "content-strategist",
        "copywriter",
        "seo-specialist",
        "social-media-manager",
        "brand-strategist",
        "growth-marketer",
    },
    "sales": {"sales-lead", "account-executive", "sales-development-rep"},
    "operations": {
        "operations-manager",
        "project-manager",
        "business-analyst",
        "hr-generalist",
        "recruiter",
        "legal-counsel",
        "finance-analyst",
    },
    "research": {
        "lead-researcher",
        "researcher",
        "data-analyst",
        "data-scientist",
        "market-analyst",
    },
    "assistant": {"personal-assistant", "executive-assistant", "scheduler", "inbox-manager"},
    "customer": {"customer-success-manager", "support-agent"},
    "creative": {"graphic-designer", "video-producer", "editor"},
}
PRESETS = ["coding", "general", "hybrid", "local-canary", "minimal", "research"]
PROFILES = ["business", "marketing", "personal-assistant", "research", "software-delivery"]


def _floor_holds(roster: Roster) -> None:
    classes = [agent.agent_class for agent in roster.agents]
    assert classes.count(ORCHESTRATOR) == 1
    assert classes.count(ENHANCER) >= 1


def test_every_library_role_is_shipped_by_domain() -> None:
    assert catalog.role_domains() == sorted(LIBRARY)
    for domain, names in LIBRARY.items():
        assert {role.name for role in catalog.list_roles(domain)} == names


@pytest.mark.parametrize("role", catalog.list_roles(), ids=lambda r: r.name)
def test_every_role_file_is_a_short_contract(role: catalog.Role) -> None:
    assert role.domain in LIBRARY and role.agent_class and role.summary
    for section in catalog.ROLE_SECTIONS:
        assert f"## {section}" in role.body
    lines = role.body.strip().splitlines()
    assert 8 <= len(lines) <= 20, f"{role.name}: {len(lines)} lines"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# no front matter\n", "starts with YAML front matter"),
        (
            "---\nname: x\nclass: x\ndomain: d\npersistent: maybe\nsummary: s\n---\n## Mandate\n",
            "front matter: persistent",
        ),
        (
            "---\nname: x\nclass: x\ndomain: d\npersistent: true\nsummary: s\n---\n## Mandate\n",
            "missing section(s): Boundaries, Hand-offs",
        ),
    ],
)
def test_bad_role_file_is_one_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=r"^x\.md: ") as caught:
        catalog.parse_role(text, "x.md")
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_presets_are_complete_valid_rosters() -> None:
    assert catalog.preset_names() == PRESETS
    for preset in catalog.list_presets():
        assert preset.roster.preset == preset.name
        assert preset.description
        if preset.name == "minimal":
            assert len(preset.roster.agents) == 1
        else:
            _floor_holds(preset.roster)
        roles = {agent.role for agent in preset.roster.agents if agent.role}
        assert all(catalog.load_role(role) for role in roles)


def test_local_canary_needs_no_ai_runtime() -> None:
    assert {a.runtime for a in catalog.load_preset("local-canary").roster.agents} == {"stub"}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_roster_validates_through_the_cli(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(catalog.load_preset(name).roster.to_yaml())
    run = run_fleet("roster", "validate", str(path))
    assert run.exit_code == 0, run.stderr
    assert run.stdout.strip() == f"ok: {len(catalog.load_preset(name).roster.agents)} agents"


def test_profiles_expand_to_valid_rosters_with_the_lead_as_orchestrator() -> None:
    assert catalog.profile_names() == PROFILES
    for profile in catalog.list_profiles():
        roster = catalog.expand_profile(profile)
        _floor_holds(roster)
        assert roster.profile == profile.name and roster.preset is None
        lead = roster.agent(profile.seat(profile.lead).agent_names()[0])
        assert lead.agent_class == ORCHESTRATOR and lead.reports_to is None
        assert all(agent.reports_to for agent in roster.agents if agent is not lead)


def test_multiplicity_and_reports_to_expand() -> None:
    roster = catalog.expand_profile(catalog.load_profile("software-delivery"))
    coders = [a for a in roster.agents if a.role == "code"]
    assert [a.name for a in coders] == ["coder0", "coder1"]
    assert {(a.agent_class, a.runtime, a.reports_to) for a in coders} == {
        ("coder", "codex", "decomposition")
    }
    assert roster.agent("security-review").reports_to == "reviewer"
    research = catalog.expand_profile(catalog.load_profile("research"))
    assert research.agent("researcher1").runtime == "pi"
    assert research.agent("researcher1").reset_between_tasks is True
    assert research.agent("lead-researcher").persistent_persona is True


def _profile(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tiny",
        "title": "Tiny",
        "lead": "orchestrator",
        "floor": ["orchestrator", "enhancer"],
        "agents": [
            {"role": "orchestrator"},
            {"role": "enhancer", "reports_to": "orchestrator"},
            {"role": "code", "name": "coder", "multiplicity": 3, "reports_to": "orchestrator"},
        ],
    }
    data.update(changes)
    return data


def test_a_new_profile_is_data_only() -> None:
    roster = catalog.expand_profile(catalog.parse_profile(_profile()))
    assert roster.names() == ["orchestrator", "enhancer", "coder0", "coder1", "coder2"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"agents": [{"role": "orchestrator"}, {"role": "enhancer"}, {"role": "wizard"}]},
            "seat 'wizard': role: not in the role library",
        ),
        (
            {"agents": [{"role": "orchestrator"}, {"role": "enhancer", "reports_to": "ceo"}]},
            "seat 'enhancer': reports_to: 'ceo' is not a seat",
        ),
        ({"floor": ["orchestrator"]}, "floor: must include an enhancer seat"),
        ({"floor": ["enhancer"]}, "floor: must include the lead 'orchestrator'"),
        (
            {"lead": "code", "floor": ["code", "enhancer"]},
            "lead: the lead seat is the orchestrator and cannot have multiplicity",
        ),
        (
            {"agents": [{"role": "orchestrator"}, {"role": "enhancer"}, {"role": "enhancer"}]},
            "seat 'enhancer': role: listed twice",
        ),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_profile_is_one_line(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=r"^tiny\.yaml: ") as caught:
        catalog.parse_profile(_profile(**changes), "tiny.yaml")
    assert expected in str(caught.value)


def test_template_lookup_prefers_profiles_and_lists_both() -> None:
    assert catalog.load_template("research").kind == "profile"
    assert catalog.load_template("research", "preset").kind == "preset"
    assert catalog.load_template("coding").kind == "preset"
    assert catalog.load_template("minimal").floor == []
    assert catalog.load_template("business").floor == ["ceo", "enhancer"]
    assert len(catalog.list_templates()) == len(PRESETS) + len(PROFILES)


def test_catalog_cli_lists_and_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    presets = json.loads(run_fleet("presets", "list", "--json").stdout)
    assert [p["name"] for p in presets] == PRESETS
    shown = json.loads(run_fleet("presets", "show", "coding", "--json").stdout)
    assert shown["roster"]["preset"] == "coding"
    profiles = json.loads(run_fleet("profiles", "list", "--json").stdout)
    assert {p["name"]: p["lead"] for p in profiles}["business"] == "ceo"
    profile = json.loads(run_fleet("profiles", "show", "software-delivery", "--json").stdout)
    assert [a["name"] for a in profile["roster"]["agents"]][4:6] == ["coder0", "coder1"]
    sales = json.loads(run_fleet("roles", "list", "--domain", "sales", "--json").stdout)
    assert {r["name"] for r in sales} == LIBRARY["sales"]
    role = run_fleet("roles", "show", "merge-gate")
    assert role.exit_code == 0 and "## Boundaries" in role.stdout
    assert "coder1" in run_fleet("profiles", "show", "software-delivery").stdout
    assert "reviewer0" in run_fleet("presets", "show", "coding").stdout
    assert "growth-marketer" in run_fleet("roles", "list").stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["presets", "show", "nope"], "fleet: unknown preset 'nope' (known: coding, general"),
        (["profiles", "show", "nope"], "fleet: unknown profile 'nope' (known: business"),
        (["roles", "show", "nope"], "fleet: unknown role 'nope' (known: "),
        (["roles", "list", "--domain", "nope"], "fleet: unknown domain 'nope' (known: assistant"),
    ],
)
def test_unknown_names_are_one_line_exit_2(args: list[str], expected: str) -> None:
    run = run_fleet(*args)
    assert run.exit_code == 2 and run.stdout == ""
    assert run.stderr.startswith(expected) and run.stderr.count("\n") == 1


def test_shipped_profile_files_carry_their_own_name_or_none() -> None:
    for name in PROFILES:
        raw = yaml.safe_load(catalog.data_dir().joinpath(f"profiles/{name}.yaml").read_text())
        assert raw.get("name", name) == name


def test_operator_catalog_in_home_adds_and_replaces_without_touching_the_package(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ops"
    local = home / catalog.LOCAL_DIR_NAME
    (local / "presets").mkdir(parents=True)
    (local / "roles" / "engineering").mkdir(parents=True)
    minimal = yaml.safe_load(catalog.data_dir().joinpath("presets/minimal.yaml").read_text())
    minimal["title"] = "ours"
    minimal["roster"].pop("preset", None)
    (local / "presets" / "minimal.yaml").write_text(yaml.safe_dump(minimal))
    coding = yaml.safe_load(catalog.data_dir().joinpath("presets/coding.yaml").read_text())
    coding["roster"].pop("preset", None)
    (local / "presets" / "tiny-team.yaml").write_text(yaml.safe_dump(coding))
    role = catalog.load_role("code")
    text = catalog.data_dir().joinpath("roles/engineering/code.md").read_text()
    (local / "roles" / "engineering" / "fuzzer.md").write_text(
        text.replace("name: code", "name: fuzzer")
    )
    listed = json.loads(run_fleet("--home", str(home), "presets", "list", "--json").stdout)
    names = [p["name"] for p in listed]
    assert "tiny-team" in names and set(PRESETS) <= set(names)
    assert {p["name"]: p["title"] for p in listed}["minimal"] == "ours"
    roles = json.loads(run_fleet("--home", str(home), "roles", "list", "--json").stdout)
    assert {"fuzzer", role.name} <= {r["name"] for r in roles}
    init = run_fleet("--home", str(home), "init", "--profile", "tiny-team", "--write")
    assert init.exit_code == 0, init.stderr
    assert (home / "roster.yaml").is_file()
    # another home sees only the shipped catalog
    other = json.loads(run_fleet("presets", "list", "--json").stdout)
    assert [p["name"] for p in other] == PRESETS


def test_bad_operator_catalog_file_is_one_line_naming_it(tmp_path: Path) -> None:
    local = tmp_path / "ops" / catalog.LOCAL_DIR_NAME / "presets"
    local.mkdir(parents=True)
    (local / "broken.yaml").write_text("title: [unclosed\n")
    run = run_fleet("--home", str(tmp_path / "ops"), "presets", "show", "broken")
    assert run.exit_code == 2
    assert run.stderr.startswith(f"fleet: {local}/broken.yaml: not valid YAML")
    assert run.stderr.count("\n") == 1
