"""The spend reader on recorded transcript and rollout lines: dedupe, offsets, deltas."""

from __future__ import annotations

import json
from pathlib import Path

from fleet_queue.spend.usage import Tokens
from tests.spend.records import (
    append,
    claude_assistant,
    claude_prompt,
    claude_tool_result,
    codex_token_count,
    codex_turn_context,
    codex_user,
)
from workers.spend_reader import claude_files, read_claude, read_codex, unread

CARD = "Card c-7: demo\n\nWhen done, run: fleet card done c-7 --token 3"


def _sum(turns: list) -> Tokens:  # type: ignore[type-arg]
    total = Tokens()
    for turn in turns:
        total = total + turn.tokens
    return total


def test_one_message_written_as_three_content_block_lines_counts_once(tmp_path: Path) -> None:
    path = tmp_path / "projects" / "-work" / "s1.jsonl"
    usage = (1200, 345, 100, 50)
    append(
        path,
        claude_prompt(CARD),
        claude_assistant("msg_1", "req_1", usage, "text"),
        claude_assistant("msg_1", "req_1", usage, "tool_use"),
        claude_assistant("msg_1", "req_1", usage, "tool_use"),
        claude_tool_result(),
        claude_assistant("msg_2", "req_2", (7, 8, 9, 10)),
    )
    read = read_claude(path, None, set())
    assert [t.card for t in read.turns] == ["c-7", "c-7"]  # a tool result is no new prompt
    assert _sum(read.turns) == Tokens(1207, 353, 109, 60)
    assert read.mark.offset == path.stat().st_size
    assert claude_files(tmp_path) == [path]


def test_reading_on_from_the_mark_counts_nothing_twice_and_waits_for_a_whole_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.jsonl"
    first = claude_assistant("msg_1", "req_1", (10, 20, 0, 0))
    rest = json.dumps(claude_assistant("msg_2", "req_2", (1, 2, 3, 4)))
    append(path, claude_prompt(CARD), first, partial=rest[:40])
    counted: set[str] = set()
    one = read_claude(path, None, counted)
    assert _sum(one.turns) == Tokens(10, 20, 0, 0)
    assert one.mark.offset < path.stat().st_size  # the half-written line is left for later
    assert read_claude(path, one.mark, counted).turns == []
    with path.open("a") as handle:
        handle.write(rest[40:] + "\n")
    # the same block of msg_1 again (Claude Code's next content block), then msg_2
    append(path, claude_assistant("msg_1", "req_1", (10, 20, 0, 0), "tool_use"))
    two = read_claude(path, one.mark, set(one.mark.state["keys"]))
    assert _sum(two.turns) == Tokens(1, 2, 3, 4)
    assert [t.card for t in two.turns] == ["c-7"]  # the card carried in the mark
    assert not unread(path, two.mark)


def test_a_message_already_counted_in_another_file_is_not_counted_again(tmp_path: Path) -> None:
    usage = (5, 6, 7, 8)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    append(a, claude_assistant("msg_1", "req_1", usage))
    append(b, claude_assistant("msg_1", "req_1", usage), claude_assistant("m2", "r2", usage))
    counted: set[str] = set()
    assert len(read_claude(a, None, counted).turns) == 1
    assert len(read_claude(b, None, counted).turns) == 1


def test_synthetic_messages_and_meta_prompts_are_not_spend_or_cards(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    meta = {**claude_prompt("<system-reminder>x</system-reminder>"), "isMeta": True}
    append(
        path,
        claude_prompt(CARD),
        meta,
        claude_assistant("m0", "r0", (0, 0, 0, 0), model="<synthetic>"),
        claude_assistant("m1", "r1", (1, 1, 1, 1)),
        claude_prompt("just a question"),
        claude_assistant("m2", "r2", (2, 2, 2, 2)),
    )
    turns = read_claude(path, None, set()).turns
    assert [(t.card, t.tokens.input) for t in turns] == [("c-7", 1), (None, 2)]


def _rollout(tmp_path: Path) -> Path:
    return tmp_path / "sessions" / "2026" / "12" / "02" / "rollout-2026-12-02T10-31-21-x.jsonl"


def test_codex_cumulative_totals_count_once_even_when_an_event_repeats(tmp_path: Path) -> None:
    path = _rollout(tmp_path)
    append(
        path,
        codex_turn_context("gpt-5-codex"),
        codex_user("<environment_context>cwd</environment_context>"),
        codex_user(CARD),
        codex_token_count((1300, 100, 345), (1300, 100, 345)),
        codex_token_count((1300, 100, 345), (1300, 100, 345)),  # repeated (a rate-limit update)
        codex_token_count((1312, 107, 351), (12, 7, 6)),
    )
    read = read_codex(path, None)
    assert [t.tokens for t in read.turns] == [Tokens(1200, 345, 100, 0), Tokens(5, 6, 7, 0)]
    assert {(t.model, t.card) for t in read.turns} == {("gpt-5-codex", "c-7")}
    # a restart of the reader from the stored mark: the next total counts its difference
    append(path, codex_token_count((1400, 107, 360), (88, 0, 9)))
    again = read_codex(path, read.mark)
    assert [t.tokens for t in again.turns] == [Tokens(88, 9, 0, 0)]
    assert again.turns[0].model == "gpt-5-codex"


def test_codex_total_that_went_down_falls_back_to_the_last_request(tmp_path: Path) -> None:
    path = _rollout(tmp_path)
    append(
        path,
        codex_token_count((1000, 0, 100), (1000, 0, 100)),
        codex_token_count((50, 10, 5), (50, 10, 5)),  # a new count started
    )
    tokens = [t.tokens for t in read_codex(path, None).turns]
    assert tokens == [Tokens(1000, 100, 0, 0), Tokens(40, 5, 10, 0)]


def test_a_file_replaced_by_a_shorter_one_is_read_from_its_start(tmp_path: Path) -> None:
    path = _rollout(tmp_path)
    append(path, codex_token_count((1000, 0, 100), (1000, 0, 100)), codex_user(CARD))
    mark = read_codex(path, None).mark
    path.unlink()
    append(path, codex_token_count((30, 0, 3), (30, 0, 3)))
    assert [t.tokens for t in read_codex(path, mark).turns] == [Tokens(30, 3, 0, 0)]
