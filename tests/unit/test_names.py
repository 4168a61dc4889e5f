"""Names that reach tmux, a path, a queue, a Redis key or a shell: one rule, refused in one line."""

from __future__ import annotations

import itertools
import shlex
from dataclasses import dataclass

import pytest

from fleet_queue.card_text import render_card
from fleet_queue.errors import ConfigError, RosterError, UsageError
from fleet_queue.names import PATTERNS, check_name
from fleet_queue.queues import control_queue, host_queue, node_name, redis_key
from fleet_queue.roster import parse_roster
from fleet_queue.settings import load_settings

BAD = {
    "tmux socket": ["../../../x", "a/b", "-L", "a.b", "", "a b", "x" * 64, "sock\n"],
    "holder session": ["../h", "a:b", "a.b", "-h", "__h", ""],
    "tenant": ["acme.x", "a:b", "a/b", "-t", "", "é", "a b"],
    "host": ["a/b", "a..b", "..", "-h", "a:b", "a b", "", "h" * 254],
    "agent": ["a.b", "-a", "a/b", "_a", "a b"],
    "card id": ["y$(touch${IFS}pwned)", "a;b", "a`b`", "-rf", "a/b", "a b", "a'b", "a..b", ""],
}
GOOD = {
    "tmux socket": ["fleet", "fq0123abcd", "a-b_c"],
    "holder session": ["_holder", "holder"],
    "tenant": ["default", "acme", "t-1"],
    "host": ["build-1", "acme.hub", "h1.example.org"],
    "agent": ["orchestrator", "coder-2"],
    "card id": ["c-3f2a9b1c0d4e", "A1", "report-2024-06-01", "goal:G1", "x.y", "a@b+c=d,e%f"],
}


@pytest.mark.parametrize(("kind", "value"), [(k, v) for k, vs in BAD.items() for v in vs])
def test_bad_names_are_refused_in_one_line(kind: str, value: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_name(kind, value)
    assert "\n" not in caught.value.message and kind in caught.value.message


@pytest.mark.parametrize(("kind", "value"), [(k, v) for k, vs in GOOD.items() for v in vs])
def test_good_names_pass(kind: str, value: str) -> None:
    assert check_name(kind, value) == value


def test_card_ids_need_no_shell_quoting() -> None:
    for value in GOOD["card id"]:
        assert shlex.quote(value) == value
    assert set(PATTERNS) == set(BAD) == set(GOOD)


def _roster(**tmux: str) -> dict[str, object]:
    return {
        "preset": "minimal",
        "tmux": tmux,
        "agents": [{"name": "w1", "runtime": "stub", "class": "coder"}],
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_roster(socket_name="../../../x"), "tmux.socket_name"),
        (_roster(holder_session="../h"), "tmux.holder_session"),
        (
            {
                **_roster(),
                "agents": [{"name": "w1", "runtime": "stub", "class": "c", "host": "a/b"}],
            },
            "agent 'w1': host",
        ),
        (
            {
                **_roster(),
                "agents": [{"name": "w1", "runtime": "stub", "class": "c", "tenant_id": "a.b"}],
            },
            "agent 'w1': tenant_id",
        ),
    ],
)
def test_the_roster_refuses_unsafe_names(data: dict[str, object], field: str) -> None:
    with pytest.raises(RosterError) as caught:
        parse_roster(data, "roster.yaml")
    assert caught.value.message.startswith(f"roster.yaml: {field}: "), caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FLEET_TMUX_SOCKET", "../../../x"),
        ("FLEET_TENANT", "acme.x"),
        ("FLEET_HOST", "a/b"),
        ("FLEET_HOST", "a..b"),
    ],
)
def test_settings_refuse_unsafe_names(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_no_two_tenant_host_pairs_share_a_queue_node_or_key() -> None:
    tenants = ["default", "acme", "acme-hub", "a", "hub"]
    hosts = ["hub", "acme.hub", "a.acme.hub", "default", "acme", "h-1"]
    pairs = list(itertools.product(tenants, hosts))
    for build in (host_queue, node_name):
        names = [build(t, h) for t, h in pairs]
        assert len(set(names)) == len(pairs), build.__name__
    assert host_queue("default", "acme.hub") != host_queue("acme", "hub")
    controls = [control_queue(t) for t in tenants] + [host_queue(t, h) for t, h in pairs]
    assert len(set(controls)) == len(controls)
    assert len({redis_key(t, "beat") for t in tenants}) == len(tenants)


def test_the_default_tenants_names_are_unchanged() -> None:
    """Compatibility: a fleet of one tenant keeps the queues its workers already consume."""
    assert host_queue("default", "build-1") == "fleet.host.build-1"
    assert control_queue("default") == "fleet.control"
    assert node_name("default", "build-1") == "fleet@build-1"


@dataclass(frozen=True)
class _Card:
    id: str
    title: str
    body: str


def test_the_delivered_close_command_quotes_the_card_id() -> None:
    text = render_card(_Card("a'b c", "t", ""), 7)
    assert "fleet card done 'a'\"'\"'b c' --token 7" in text
    assert render_card(_Card("A1", "t", ""), 3).splitlines()[-2].endswith("done A1 --token 3")
