"""Claude Code 2.1 in print mode (`claude -p`) against the model double.

Print mode is the quickest honest check that the double speaks the Messages API
well enough: the real CLI streams our SSE, runs our tool calls and retries our
errors exactly as it would against the real API.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet_queue.model_double import Reply, ToolCall
from tests.runtimes.conftest import CliRun

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(300)]


def _result(run: CliRun, prompt: str, *flags: str, **env: str) -> dict[str, object]:
    done = run.run(["claude", "-p", prompt, "--output-format", "json", *flags], **env)
    assert done.stdout, f"claude printed nothing (exit {done.returncode}): {done.stderr}"
    result: dict[str, object] = json.loads(done.stdout)
    result["exit"] = done.returncode
    return result


def test_print_mode_shows_the_scripted_reply_and_the_double_got_the_prompt_byte_for_byte(
    claude: CliRun,
) -> None:
    prompt = "say hi\n  with two lines, ünïcode and a trailing space "
    claude.double.script(Reply(text="Hi from the script."))
    result = _result(claude, prompt)
    assert result["result"] == "Hi from the script."
    assert result["exit"] == 0
    [turn] = claude.double.main_turns()
    assert turn.last_user_text() == prompt
    assert claude.double.prompts() == [prompt]
    assert turn.streaming and turn.headers["x-api-key"].endswith("0123456789abcdef")


def _bash_writes(run: CliRun, target: Path) -> list[Reply]:
    return [
        Reply(
            tool_calls=[ToolCall("Bash", {"command": f"echo hi > {target}", "description": "w"})]
        ),
        Reply(text="wrote it"),
    ]


def test_root_cannot_skip_permissions_without_the_sandbox_switch(claude: CliRun) -> None:
    done = claude.run(["claude", "-p", "x", "--dangerously-skip-permissions"])
    assert done.returncode != 0
    assert "cannot be used with root" in done.stderr
    assert claude.double.requests == []


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (["--dangerously-skip-permissions"], {"IS_SANDBOX": "1"}),
        (["--allowedTools", "Bash"], {}),
    ],
    ids=["is-sandbox", "allowed-tools"],
)
def test_a_bash_tool_call_runs_as_root_and_its_result_reaches_the_double(
    claude: CliRun, flags: list[str], env: dict[str, str]
) -> None:
    target = claude.workdir / "out.txt"
    claude.double.script(*_bash_writes(claude, target))
    result = _result(claude, "write the file", *flags, **env)
    assert result["result"] == "wrote it", result
    assert target.read_text() == "hi\n"
    last = claude.double.main_turns()[-1]
    assert [e.kind for e in last.tool_results_since_user_text()] == ["tool_result"]


def test_a_bash_tool_call_runs_as_a_normal_user_with_skip_permissions(
    claude_as_nobody: CliRun,
) -> None:
    run = claude_as_nobody
    target = run.workdir / "out.txt"
    run.double.script(*_bash_writes(run, target))
    done = run.run(
        ["claude", "-p", "write the file", "--dangerously-skip-permissions"], user="nobody"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "wrote it"
    assert target.read_text() == "hi\n"
    assert target.stat().st_uid != 0


def test_card_closer_answers_a_card_with_one_bash_call_then_done(claude: CliRun) -> None:
    card = "Card c-1: demo\n\nWhen done, run: fleet card done c-1 --token 7"
    fake_fleet = claude.root / "bin"
    fake_fleet.mkdir()
    log = claude.root / "fleet.log"
    (fake_fleet / "fleet").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (fake_fleet / "fleet").chmod(0o755)
    path = f"{fake_fleet}:{claude.env['PATH']}"
    result = _result(claude, card, "--allowedTools", "Bash", PATH=path)
    assert result["result"] == "done"
    assert log.read_text() == "card done c-1 --token 7\n"
    assert len(claude.double.main_turns()) == 2


@pytest.mark.parametrize(
    "first",
    [
        Reply(error=429),
        Reply(error=500),
        Reply(error=529),
        Reply(text="cut short", drop_stream=True),
    ],
    ids=["429", "500", "529", "dropped-stream"],
)
def test_a_failed_request_is_retried_and_the_turn_completes(claude: CliRun, first: Reply) -> None:
    claude.double.script(first, Reply(text="second try"))
    result = _result(claude, "say hi")
    assert result["result"] == "second try"
    turns = claude.double.main_turns()
    assert len(turns) == 2
    assert turns[0].body == turns[1].body  # the same request, sent again


def test_a_persistent_500_is_reported_after_the_configured_retries(claude: CliRun) -> None:
    claude.double.responder = lambda _request: Reply(error=500)
    result = _result(claude, "say hi", CLAUDE_CODE_MAX_RETRIES="2")
    assert result["is_error"] is True
    assert result["api_error_status"] == 500
    assert result["exit"] != 0
    assert len(claude.double.main_turns()) == 3  # the first try and two retries
