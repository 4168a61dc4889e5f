"""Spend read from the real Claude Code and Codex records: the ledger holds exactly the
usage the model double answered with, and a second scan (or a restarted reader) adds
nothing; an over-budget flag makes the real Claude Code refuse a tool call and end its turn.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet_queue.cards import EventKind
from fleet_queue.model_double import ModelDouble, Reply, ToolCall, Usage
from fleet_queue.roster import AgentSpec, Roster
from fleet_queue.settings import Settings
from fleet_queue.spend.usage import Tokens
from fleet_queue.store import CardStore
from tests.runtimes.conftest import RUNTIME_BIN, CliRun, claude_env, codex_env, runtime_binary
from workers.runtime_homes import prepare
from workers.spend_scan import flag_path, refusal, scan_host

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(300)]

CARD = "Card c-1: spend\n\nWhen done, run: fleet card done c-1 --token 7"
FIRST = Usage(input_tokens=1200, output_tokens=345, cache_read_tokens=100, cache_write_tokens=50)
SECOND = Usage(input_tokens=7, output_tokens=8, cache_read_tokens=9, cache_write_tokens=10)


def _tokens(*usages: Usage, cache_write: bool = True) -> Tokens:
    total = Tokens()
    for u in usages:
        write = u.cache_write_tokens if cache_write else 0
        total = total + Tokens(u.input_tokens, u.output_tokens, u.cache_read_tokens, write)
    return total


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Settings, Roster]:
    home = tmp_path / "fleet"
    home.mkdir(mode=0o700)
    claude_dir = home / "agents" / "cc" / "claude"
    agents = [
        {
            "name": "cc",
            "runtime": "claude",
            "class": "worker",
            "env": {"CLAUDE_CONFIG_DIR": str(claude_dir)},
        },
        {"name": "cx", "runtime": "codex", "class": "worker"},
    ]
    roster = Roster(preset="minimal", agents=[AgentSpec.model_validate(a) for a in agents])
    settings = Settings(home=home, host="h1", database_url=f"sqlite:///{tmp_path / 'store.db'}")
    return settings, roster


def _claude(settings: Settings, double: ModelDouble, root: Path) -> CliRun:
    runtime_binary("claude")
    env = claude_env(root, double, RUNTIME_BIN)
    env["CLAUDE_CONFIG_DIR"] = str(settings.home / "agents" / "cc" / "claude")
    return CliRun(double, root, env)


def _ledger(store: CardStore) -> dict[tuple[str, str | None, str], Tokens]:
    rows = store.spend_rows("2000-01-01")
    return {(r.agent, r.card, r.model): r.tokens for r in rows}


def test_the_ledger_holds_exactly_the_usage_the_double_answered_claude_and_codex(
    fleet: tuple[Settings, Roster], double: ModelDouble, tmp_path: Path
) -> None:
    settings, roster = fleet
    claude = _claude(settings, double, tmp_path / "c")
    # text and two tool calls: Claude Code writes three transcript lines with this usage
    calls = [ToolCall("Bash", {"command": f"echo {w}", "description": w}) for w in ("a", "b")]
    double.script(Reply(text="on it", tool_calls=calls, usage=FIRST), Reply("done", usage=SECOND))
    done = claude.run(
        ["claude", "-p", CARD, "--model", "claude-sonnet-4-5", "--allowedTools", "Bash"]
    )
    assert done.returncode == 0, done.stderr
    assert len(double.requests) == 2  # no side request with other figures

    codex_root = settings.home / "agents" / "cx"
    codex = CliRun(double, codex_root, codex_env(codex_root, double, RUNTIME_BIN))
    runtime_binary("codex")
    shell = ToolCall("exec_command", {"cmd": "echo hi"})
    double.script(
        Reply(text="running", tool_calls=[shell], usage=FIRST), Reply("fin", usage=SECOND)
    )
    exec_argv = ["codex", "exec", "--strict-config", "--skip-git-repo-check"]
    done = codex.run([*exec_argv, "--dangerously-bypass-approvals-and-sandbox", CARD])
    assert done.returncode == 0, done.stderr
    assert len(double.requests) == 4

    expected: dict[tuple[str, str | None, str], Tokens] = {
        ("cc", "c-1", "claude-sonnet-4-5"): _tokens(FIRST, SECOND),
        # the Responses API has no cache write: Codex records none
        ("cx", "c-1", "gpt-5-codex"): _tokens(FIRST, SECOND, cache_write=False),
    }
    with CardStore.from_settings(settings) as store:
        report = scan_host(settings, roster, store)
        assert (report.turns, report.conflicts) == (4, [])
        assert _ledger(store) == expected
        assert scan_host(settings, roster, store).turns == 0
        assert _ledger(store) == expected
        [cost] = [r.cost for r in store.spend_rows("2000-01-01") if r.agent == "cc"]
        assert cost == pytest.approx((1207 * 3 + 353 * 15 + 109 * 0.3 + 60 * 3.75) / 1e6)

    # a second session of the same agent, read by a restarted reader (a new store object)
    double.script(Reply("again", usage=SECOND))
    done = claude.run(["claude", "-p", "just a question", "--model", "claude-sonnet-4-5"])
    assert done.returncode == 0, done.stderr
    with CardStore.from_settings(settings) as store:
        assert scan_host(settings, roster, store).turns == 1
        assert scan_host(settings, roster, store).turns == 0
        outside_card = ("cc", None, "claude-sonnet-4-5")
        assert _ledger(store) == {**expected, outside_card: _tokens(SECOND)}


def test_the_default_claude_model_unpriced_is_counted_and_said_once(
    fleet: tuple[Settings, Roster], double: ModelDouble, tmp_path: Path
) -> None:
    settings, roster = fleet
    claude = _claude(settings, double, tmp_path / "c")
    double.script(Reply("hi", usage=FIRST))
    assert claude.run(["claude", "-p", "hi"]).returncode == 0
    with CardStore.from_settings(settings) as store:
        scan_host(settings, roster, store)
        [row] = store.spend_rows("2000-01-01")
        assert (row.tokens, row.cost) == (_tokens(FIRST), None)  # unknown, not zero
        [event] = store.events(kind=EventKind.UNPRICED)
        assert event.detail is not None and event.detail.startswith(f"{row.model}:")


def test_an_over_budget_flag_makes_claude_code_refuse_the_tool_call_and_end_the_turn(
    fleet: tuple[Settings, Roster], double: ModelDouble, tmp_path: Path
) -> None:
    settings, _roster = fleet
    claude = _claude(settings, double, tmp_path / "c")
    prepare(settings.run_dir, "cc", "claude", claude.env, claude.workdir, unattended=False)
    target = claude.workdir / "made.txt"
    bash = ToolCall("Bash", {"command": f"touch {target}", "description": "touch"})
    double.script(Reply(tool_calls=[bash]))  # a turn that went on would ask a second time
    flag = flag_path(settings.run_dir, "cc")
    flag.write_text(json.dumps(refusal("over budget: agent cc day: $5.0100 of $5.00")))
    done = claude.run(
        ["claude", "-p", "touch it", "--output-format", "json", "--allowedTools", "Bash"]
    )
    result = json.loads(done.stdout)
    assert not target.exists()  # the tool call was refused
    assert len(double.main_turns()) == 1  # and the turn ended: no request after it
    transcripts = (settings.home / "agents" / "cc" / "claude" / "projects").glob("*/*.jsonl")
    said = "".join(path.read_text() for path in transcripts)
    assert "over budget: agent cc day" in said, result  # the reason, in the runtime's record

    flag.unlink()  # budget raised: the next turn's tool call runs
    double.script(Reply(tool_calls=[bash]), Reply("made"))
    done = claude.run(
        ["claude", "-p", "touch it", "--output-format", "json", "--allowedTools", "Bash"]
    )
    assert json.loads(done.stdout)["result"] == "made"
    assert target.exists()
