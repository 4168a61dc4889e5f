"""Codex CLI 0.171 (`codex exec`) against the model double over the Responses API."""

from __future__ import annotations

import pytest

from fleet_queue.model_double import Reply, shell_tool_call
from tests.runtimes.conftest import CliRun

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(300)]

EXEC = ["codex", "exec", "--strict-config", "--skip-git-repo-check"]
UNSANDBOXED = "--dangerously-bypass-approvals-and-sandbox"


def test_exec_prints_the_scripted_reply_and_the_double_got_the_prompt(codex: CliRun) -> None:
    prompt = "say hi\n  with two lines and ünïcode "
    codex.double.script(Reply(text="Hi from the script."))
    done = codex.run([*EXEC, prompt])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hi from the script.\n"
    [turn] = codex.double.main_turns()
    assert turn.api == "openai" and turn.path == "/v1/responses" and turn.streaming
    assert turn.last_user_text() == prompt
    assert turn.headers["authorization"].endswith("0123456789abcdef")
    assert "exec_command" in turn.tools


def test_card_closer_runs_fleet_card_done_through_the_exec_command_tool(codex: CliRun) -> None:
    bin_dir = codex.root / "bin"
    bin_dir.mkdir()
    log = codex.root / "fleet.log"
    (bin_dir / "fleet").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (bin_dir / "fleet").chmod(0o755)
    card = "Card c-2: demo\n\nWhen done, run: fleet card done c-2 --token 3"
    done = codex.run([*EXEC, UNSANDBOXED, card], PATH=f"{bin_dir}:{codex.env['PATH']}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    assert log.read_text() == "card done c-2 --token 3\n"
    first, second = codex.double.main_turns()
    assert shell_tool_call(first, "x").name == "exec_command"
    assert len(second.tool_results_since_user_text()) == 1


@pytest.mark.parametrize(
    "first",
    [Reply(error=429), Reply(error=500), Reply(text="cut short", drop_stream=True)],
    ids=["429", "500", "dropped-stream"],
)
def test_a_failed_request_is_retried_and_the_turn_completes(codex: CliRun, first: Reply) -> None:
    codex.double.script(first, Reply(text="second try"))
    done = codex.run([*EXEC, "say hi"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "second try\n"
    assert len(codex.double.main_turns()) == 2


def test_a_persistent_500_ends_in_an_error_exit(codex: CliRun) -> None:
    codex.double.responder = lambda _request: Reply(error=500)
    done = codex.run([*EXEC, "say hi"])
    assert done.returncode != 0
    assert "500" in done.stderr
    assert len(codex.double.main_turns()) > 1  # retried before giving up
