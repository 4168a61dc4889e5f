"""The model double over plain HTTP: the wire shapes, scripting and recording a test relies on."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.model_double import ModelDouble, Reply, ToolCall, Usage


def _post(url: str, body: dict[str, Any], timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in raw.decode().split("\n\n"):
        if frame.strip():
            name, data = frame.split("\n", 1)
            events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


TOOLS = [{"name": "Bash", "input_schema": {}}]


def _anthropic(text: str, stream: bool) -> dict[str, Any]:
    return {
        "model": "m",
        "stream": stream,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": text}],
    }


def test_anthropic_stream_carries_text_and_tool_input_in_documented_events(
    double: ModelDouble,
) -> None:
    call = ToolCall("Bash", {"command": "echo a long enough command to split in chunks"})
    double.script(Reply(text="hello", tool_calls=[call], usage=Usage(100, 7, 50, 3)))
    status, raw = _post(f"{double.url}/v1/messages", _anthropic("hi", stream=True))
    events = _sse(raw)
    names = [name for name, _ in events]
    assert status == 200
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]["usage"]
    assert (start["input_tokens"], start["cache_read_input_tokens"]) == (100, 50)
    assert start["cache_creation_input_tokens"] == 3
    json_parts = [
        d["delta"]["partial_json"]
        for n, d in events
        if d.get("index") == 1 and n == "content_block_delta"
    ]
    assert len(json_parts) > 1 and json.loads("".join(json_parts)) == call.input
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] == 7


def test_openai_stream_ends_in_response_completed_with_the_whole_output(
    double: ModelDouble,
) -> None:
    double.script(Reply(tool_calls=[ToolCall("exec_command", {"cmd": "ls"})]))
    body = {
        "model": "m",
        "stream": True,
        "tools": [{"type": "function", "name": "exec_command"}],
        "input": "hi",
    }
    _, raw = _post(f"{double.url}/v1/responses", body)
    events = _sse(raw)
    assert [n for n, _ in events][:3] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
    ]
    done = events[-1][1]["response"]
    assert events[-1][0] == "response.completed" and done["status"] == "completed"
    [item] = done["output"]
    assert item["type"] == "function_call" and json.loads(item["arguments"]) == {"cmd": "ls"}
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))


def test_side_requests_do_not_consume_the_script_and_are_not_main_turns(
    double: ModelDouble,
) -> None:
    double.script(Reply(text="scripted"))
    side = {"model": "m", "messages": [{"role": "user", "content": "title?"}]}
    _, raw = _post(f"{double.url}/v1/messages", side)
    assert json.loads(raw)["content"][0]["text"] != "scripted"
    _, raw = _post(f"{double.url}/v1/messages", _anthropic("hi", stream=False))
    assert json.loads(raw)["content"][0]["text"] == "scripted"
    _, raw = _post(f"{double.url}/v1/messages/count_tokens", side)
    assert json.loads(raw)["input_tokens"] > 0
    assert [r.is_main_turn for r in double.requests] == [False, True, False]


def test_a_scripted_error_answers_with_the_status_and_an_api_error_body(
    double: ModelDouble,
) -> None:
    double.script(Reply(error=429))
    status, raw = _post(f"{double.url}/v1/messages", _anthropic("hi", stream=True))
    assert status == 429 and json.loads(raw)["error"]["type"] == "rate_limit_error"


def test_think_time_delays_the_answer_and_never_holds_it_until_stop(double: ModelDouble) -> None:
    double.script(Reply(text="slow", think_time=0.5), Reply(never=True))
    began = time.monotonic()
    _post(f"{double.url}/v1/messages", _anthropic("a", stream=False))
    assert time.monotonic() - began >= 0.5
    outcome: list[object] = []
    held = threading.Thread(
        target=lambda: outcome.append(_try_post(f"{double.url}/v1/messages", _anthropic("b", True)))
    )
    held.start()
    double.wait_for(lambda r: r.last_user_text() == "b", timeout=10)
    held.join(0.5)
    assert held.is_alive()  # still waiting for an answer
    double.stop()
    held.join(10)
    assert not held.is_alive() and isinstance(outcome[0], Exception)


def _try_post(url: str, body: dict[str, Any]) -> object:
    try:
        return _post(url, body, timeout=30)
    except Exception as exc:
        return exc


def test_wait_for_names_what_arrived_when_nothing_matches(double: ModelDouble) -> None:
    _post(f"{double.url}/v1/messages", _anthropic("hi", stream=False))
    with pytest.raises(TimeoutError, match=r"1 received: \['POST /v1/messages main=True'\]"):
        double.wait_for(lambda r: r.last_user_text() == "other", timeout=0.2)


def test_module_prints_its_url_serves_the_script_and_stops_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": "from the file"}]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_queue.model_double", "--port", "0", "--script", str(script)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        _, raw = _post(f"{url}/v1/messages", _anthropic("hi", stream=False))
        assert json.loads(raw)["content"][0]["text"] == "from the file"
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_a_bad_script_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text('{"text": "not a list"}')
    done = subprocess.run(
        [sys.executable, "-m", "fleet_queue.model_double", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "bad --script" in done.stderr


def test_the_auto_mode_classifier_is_told_allow_cut_at_its_stop_sequence(
    double: ModelDouble,
) -> None:
    check = {
        "model": "m",
        "stop_sequences": ["</block>"],
        "system": [{"type": "text", "text": "If allowed:\n<block>no</block>"}],
        "messages": [{"role": "user", "content": "<transcript>...</transcript>"}],
    }
    _, raw = _post(f"{double.url}/v1/messages", check)
    answer = json.loads(raw)
    assert answer["content"][0]["text"] == "<block>no"
    assert (answer["stop_reason"], answer["stop_sequence"]) == ("stop_sequence", "</block>")


def test_codex_code_mode_gets_the_card_command_as_javascript_through_exec(
    double: ModelDouble,
) -> None:
    """Codex 0.171's TUI model offers no shell function: only `exec` (JavaScript) in an
    `additional_tools` item, whose script calls the nested exec_command."""
    exec_tool = {"type": "custom", "name": "exec"}
    tools = {"type": "namespace", "name": "functions", "tools": [exec_tool]}
    card = "Card c-3: x\n\nWhen done, run: fleet card done c-3 --token 2"
    body = {
        "model": "m",
        "stream": True,
        "input": [
            {"type": "additional_tools", "role": "developer", "tools": [tools]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": card}]},
        ],
    }
    _, raw = _post(f"{double.url}/v1/responses", body)
    events = _sse(raw)
    [item] = events[-1][1]["response"]["output"]
    assert item["type"] == "custom_tool_call" and item["name"] == "exec"
    assert 'tools.exec_command({cmd: "fleet card done c-3 --token 2"})' in item["input"]
    deltas = [d["delta"] for n, d in events if n == "response.custom_tool_call_input.delta"]
    assert "".join(deltas) == item["input"]
    assert double.requests[0].is_main_turn
