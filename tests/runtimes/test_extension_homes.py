"""pi's and opencode's homes as ``fleet start`` writes them, and the hook program they run.

No CLI runs here (tests/runtimes/test_pi.py and test_opencode.py run the real ones): these
check what each home holds, that it is private, and that the hook program turns the
extension's / plugin's events into the state, prompt and turn records fleet reads.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from fleet_queue.errors import HostError
from fleet_queue.model_double import RecordedRequest, shell_tool_call
from fleet_queue.spend.usage import Tokens
from workers import evidence
from workers.heartbeat import read_heartbeat, utcnow
from workers.runtime_homes import home_env, preflight, prepare
from workers.spend_opencode import opencode_database, read_opencode
from workers.spend_reader import pi_files, read_pi

URL = "http://127.0.0.1:4711"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _prepared(tmp_path: Path, runtime: str, unattended: bool = True) -> dict[str, str]:
    env = {"ANTHROPIC_BASE_URL": URL, "OPENAI_BASE_URL": f"{URL}/v1"}
    env.update(home_env(tmp_path / "fleet", "a1", runtime, env))
    prepare(tmp_path / "fleet" / "run", "a1", runtime, env, tmp_path, unattended)
    return env


def test_pi_home_is_private_with_our_extension_and_the_providers_base_urls(
    tmp_path: Path,
) -> None:
    env = _prepared(tmp_path, "pi")
    home = Path(env["PI_CODING_AGENT_DIR"])
    assert home == tmp_path / "fleet" / "agents" / "a1" / "pi" and env["PI_OFFLINE"] == "1"
    assert _mode(home) == 0o700
    extension = home / "extensions" / "fleet-queue.ts"
    assert _mode(extension) == 0o600
    code = extension.read_text()
    assert "__FLEET_" not in code and '"-m", "workers.hooks", "pi"' in code
    assert f'"--run-dir", "{tmp_path / "fleet" / "run"}"' in code
    models = json.loads((home / "models.json").read_text())
    assert models["providers"] == {
        "anthropic": {"baseUrl": URL},
        "openai": {"baseUrl": f"{URL}/v1"},
    }
    info = evidence.read_info(tmp_path / "fleet" / "run", "a1")
    assert info is not None and info.runtime == "pi"


def test_a_roster_env_naming_the_home_wins(tmp_path: Path) -> None:
    mine = str(tmp_path / "elsewhere")
    assert home_env(tmp_path, "a1", "pi", {"PI_CODING_AGENT_DIR": mine}) == {}
    made = home_env(tmp_path, "a1", "opencode", {"XDG_DATA_HOME": mine})
    assert "XDG_DATA_HOME" not in made and made["OPENCODE_CONFIG"].endswith("opencode.json")


@pytest.mark.parametrize("unattended", [True, False])
def test_opencode_config_names_our_plugin_and_allows_everything_only_when_unattended(
    tmp_path: Path, unattended: bool
) -> None:
    env = _prepared(tmp_path, "opencode", unattended)
    config = Path(env["OPENCODE_CONFIG"])
    home = config.parent
    assert _mode(home) == 0o700 and _mode(config) == 0o600
    data = json.loads(config.read_text())
    plugin = home / "fleet-queue.js"
    assert data["plugin"] == [plugin.as_uri()] and _mode(plugin) == 0o600
    assert '"workers.hooks", "opencode"' in plugin.read_text()
    assert data["autoupdate"] is False and data["experimental"]["disable_paste_summary"]
    assert data["provider"]["anthropic"]["options"]["baseURL"] == f"{URL}/v1"
    assert data["provider"]["openai"]["options"]["baseURL"] == f"{URL}/v1"
    allowed = data.get("permission", {})
    assert (allowed.get("bash") == "allow") is unattended
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        assert Path(env[var]).is_relative_to(home)
    # the plugin SDK is marked installed: opencode does not wait for npm before our plugin
    sdk = Path(env["XDG_CONFIG_HOME"]) / "opencode"
    lock = json.loads((sdk / "package-lock.json").read_text())
    assert "@opencode-ai/plugin" in lock["packages"][""]["dependencies"]
    assert (sdk / "node_modules").is_dir()


def test_a_second_start_keeps_the_operators_opencode_settings_and_lists_our_plugin_once(
    tmp_path: Path,
) -> None:
    env = _prepared(tmp_path, "opencode")
    config = Path(env["OPENCODE_CONFIG"])
    data = json.loads(config.read_text())
    data["plugin"].insert(0, "opencode-wakatime")
    data["model"] = "anthropic/claude-sonnet-4-5"
    config.write_text(json.dumps(data))
    prepare(tmp_path / "fleet" / "run", "a1", "opencode", env, tmp_path, True)
    again = json.loads(config.read_text())
    assert again["model"] == "anthropic/claude-sonnet-4-5"
    assert again["plugin"] == ["opencode-wakatime", (config.parent / "fleet-queue.js").as_uri()]


def test_preflight_names_the_agent_when_its_home_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {"PI_CODING_AGENT_DIR": str(blocker / "pi")}
    with pytest.raises(HostError, match=r"agent 'a1': PI_CODING_AGENT_DIR .* not a usable"):
        preflight("a1", "pi", ("pi",), env)


def test_preflight_passes_the_provider_keys_it_sees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    env = home_env(tmp_path, "a1", "opencode", {})
    assert preflight("a1", "opencode", ("opencode",), env) == {"ANTHROPIC_API_KEY": "sk-ant-x"}


@dataclass
class _Plan:
    agent: str
    env: dict[str, str] = field(default_factory=dict)


def _hook(run_dir: Path, runtime: str, event: str, payload: dict[str, object]) -> None:
    argv = [sys.executable, "-I", "-m", "workers.hooks", runtime, event]
    argv += ["--agent", "a1", "--run-dir", str(run_dir)]
    done = subprocess.run(argv, input=json.dumps(payload), text=True, capture_output=True)
    assert done.returncode == 0 and not done.stderr, done.stderr


@pytest.mark.parametrize("runtime", ["pi", "opencode"])
def test_the_hook_program_turns_their_events_into_state_prompts_and_turn_ends(
    tmp_path: Path, runtime: str
) -> None:
    env = _prepared(tmp_path, runtime)
    run_dir = tmp_path / "fleet" / "run"
    plan = _Plan("a1", {"FLEET_HOME": str(tmp_path / "fleet"), **env})
    since = utcnow() - timedelta(seconds=1)
    prompt = "[from h:fleet #0a1b2c3d] do it\n\nfleet card done k-7 --token 3"
    assert evidence.sidecar_beat(run_dir, "a1", 1).status == "busy"  # starting
    _hook(run_dir, runtime, "SessionStart", {})
    assert evidence.read_state(run_dir, "a1") == ("ok", None)
    assert evidence.prompt_seen(plan, evidence.sha256(prompt), since) is False
    _hook(run_dir, runtime, "UserPromptSubmit", {"prompt": prompt})
    assert evidence.read_state(run_dir, "a1") == ("busy", "k-7")
    hb = read_heartbeat(run_dir, "a1")
    assert hb is not None and (hb.status, hb.card) == ("busy", "k-7")
    assert evidence.prompt_seen(plan, evidence.sha256(prompt), since) is True
    assert evidence.prompt_seen(plan, evidence.sha256(prompt + " "), since) is False
    _hook(run_dir, runtime, "Stop", {"last_assistant_message": "done"})
    assert evidence.read_state(run_dir, "a1") == ("ok", None)
    ends = evidence.turns_path(run_dir, "a1").read_text().splitlines()
    assert json.loads(ends[-1])["last_assistant_message"] == "done"


def _anthropic_request(*tools: str) -> RecordedRequest:
    body = {"tools": [{"name": t, "input_schema": {}} for t in tools], "messages": []}
    return RecordedRequest("anthropic", "/v1/messages", {}, body, 0.0)


def test_the_doubles_shell_call_uses_the_bash_tool_pi_and_opencode_offer() -> None:
    pi = shell_tool_call(_anthropic_request("read", "bash", "edit"), "fleet card done k --token 1")
    assert (pi.name, pi.input) == ("bash", {"command": "fleet card done k --token 1"})
    claude = shell_tool_call(_anthropic_request("Bash", "Read"), "true")
    assert claude.name == "Bash" and claude.input["command"] == "true"


def _pi_line(role: str, **message: object) -> str:
    entry = {"type": "message", "timestamp": "2026-12-02T13:20:53.814Z"}
    return json.dumps({**entry, "message": {"role": role, **message}}) + "\n"


def test_pi_spend_counts_each_assistant_message_once_under_the_card_of_its_prompt(
    tmp_path: Path,
) -> None:
    session = tmp_path / "sessions" / "--work--" / "2026_x.jsonl"
    session.parent.mkdir(parents=True)
    usage = {"input": 12, "output": 4, "cacheRead": 3, "cacheWrite": 2, "totalTokens": 21}
    prompt = [{"type": "text", "text": "do it: fleet card done k-9 --token 2"}]
    session.write_text(
        json.dumps({"type": "session", "version": 3})
        + "\n"
        + _pi_line("user", content=prompt)
        + _pi_line("assistant", content=[], model="claude-sonnet-4-5", usage=usage)
        + _pi_line("toolResult", content=[{"type": "text", "text": "ok"}])
        + '{"type": "message", "message": {"role": "assistant"'  # half-written
    )
    assert pi_files(tmp_path) == [session]
    first = read_pi(session, None)
    assert [(t.model, t.tokens, t.card) for t in first.turns] == [
        ("claude-sonnet-4-5", Tokens(12, 4, 3, 2), "k-9")
    ]
    assert read_pi(session, first.mark).turns == []  # nothing new: counted once
    with session.open("a") as handle:  # the rest of the line, then the next answer
        handle.write(f', "model": "m2", "usage": {json.dumps(usage)}}}}}\n')
    again = read_pi(session, first.mark)
    assert [(t.model, t.card) for t in again.turns] == [("m2", "k-9")]


def _opencode_db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT, data TEXT)")
    con.execute("CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT, data TEXT)")
    return con


def _assistant(done: bool, parent: str = "u1") -> str:
    tokens = {"input": 12, "output": 4, "reasoning": 2, "cache": {"read": 3, "write": 1}}
    time: dict[str, int] = {"created": 1796217681572, **({"completed": 1} if done else {})}
    data = {"role": "assistant", "parentID": parent, "modelID": "m1", "tokens": tokens}
    return json.dumps({**data, "time": time})


def test_opencode_spend_counts_complete_messages_once_and_waits_for_a_running_one(
    tmp_path: Path,
) -> None:
    db = opencode_database(tmp_path / "data")
    con = _opencode_db(db)
    prompt = {"type": "text", "text": "do it: fleet card done k-4 --token 1"}
    con.execute("INSERT INTO message VALUES ('u1', 's', ?)", (json.dumps({"role": "user"}),))
    con.execute("INSERT INTO part VALUES ('p1', 'u1', ?)", (json.dumps(prompt),))
    con.execute("INSERT INTO message VALUES ('a1', 's', ?)", (_assistant(True),))
    con.execute("INSERT INTO message VALUES ('a2', 's', ?)", (_assistant(False),))
    con.execute("INSERT INTO message VALUES ('a3', 's', ?)", (_assistant(True),))
    con.commit()
    first = read_opencode(db, None)
    assert first is not None
    assert [(t.model, t.tokens, t.card) for t in first.turns] == [
        ("m1", Tokens(12, 6, 3, 1), "k-4"),  # reasoning is paid as output
        ("m1", Tokens(12, 6, 3, 1), "k-4"),
    ]
    assert first.mark.offset == 3  # a2 still runs: the mark waits at it
    assert read_opencode(db, first.mark) is None  # nothing new, nothing written
    con.execute("UPDATE message SET data = ? WHERE id = 'a2'", (_assistant(True),))
    con.commit()
    second = read_opencode(db, first.mark)
    assert second is not None and len(second.turns) == 1  # a2 only: a3 was counted
    assert second.mark.offset == 5 and second.mark.state == {"counted": []}
    con.close()
    assert read_opencode(tmp_path / "none.db", None) is None
