"""Delivery into every kind of pane program: each text arrives byte-exact with verify
true, or is refused with one line and verify false, and nothing of it arrives later.

The programs (``tests/host/programs``) write exactly what they received; a refused or
failed delivery is followed by a sentinel text, which a line reader only gets after
everything queued before it, so text left in the terminal would show up there.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fleet_queue.errors import AgentBusyError, DeliveryError
from fleet_queue.sanitize import sanitize_text
from fleet_queue.settings import Settings
from tests.host.conftest import draft, make_roster
from tests.host.programs import (
    HOLDER,
    INPUT,
    LAGGED,
    LINE,
    NOECHO,
    PTK,
    RAW,
    SLEEPER,
    STUB,
    Program,
)
from tests.support.poll import wait_until
from tests.support.timing import scaled
from workers import tty as ttys
from workers.delivery import Deliverer, DeliveryReceipt, label
from workers.sessions import start_agents
from workers.tmux import pane_target

SOURCE = "op"
FIGURES: dict[str, Counter[str]] = {}


@dataclass
class Panes:
    settings: Settings
    deliverer: Deliverer
    outs: dict[str, Path]
    programs: dict[str, Program]

    def records(self, name: str) -> list[str]:
        return self.programs[name].records(self.outs[name], self.settings.run_dir)

    def reading(self, name: str) -> bool:
        line = self.deliverer.control.command(
            "display-message", "-p", "-t", pane_target(name), "#{pane_tty}\t#{pane_pid}"
        )[0]
        path, _, pid = line.partition("\t")
        return ttys.inspect(path, int(pid)).reading is True

    def deliver(self, name: str, text: str, timeout: float = 15.0) -> DeliveryReceipt:
        """Deliver, waiting out the moments a line reader is writing its last line."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.deliverer.deliver(name, text, source=SOURCE, force=True)
            except AgentBusyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def arrived(self, name: str, before: int, expected: list[str]) -> list[str]:
        wait_until(
            lambda: len(self.records(name)) >= before + len(expected),
            15,
            what=f"{len(expected)} records in {name}",
        )
        time.sleep(0.05)  # a record too many would show now
        return self.records(name)[before:]


@pytest.fixture
def panes(
    host_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Panes]:
    programs: list[Program] = request.param
    outs = {p.name: tmp_path / f"{p.name}.out" for p in programs}
    roster = make_roster(*(p.agent(outs[p.name]) for p in programs))
    start_agents(host_settings, roster)
    deliverer = Deliverer(host_settings, roster, verify_timeout=scaled(3.0))
    harness = Panes(host_settings, deliverer, outs, {p.name: p for p in programs})
    try:
        for program in programs:
            if program is not SLEEPER and program is not HOLDER:
                wait_until(
                    lambda p=program: harness.reading(p.name), 20, what=f"{program.name} reads"
                )
        yield harness
    finally:
        deliverer.close()


def one(program: Program) -> object:
    return pytest.param([program], id=program.name)


CHARS = st.characters(blacklist_categories=("Cs",))
"""Any character: the sanitizer removes control bytes, the rest must arrive as it is."""
LINE_TEXT = st.text(CHARS, max_size=60)
TABBED = st.lists(st.text(CHARS, max_size=12), min_size=2, max_size=5).map("\t".join)
LONG = st.builds(
    lambda seed, n: ((seed or "L") * n)[:n], st.text(CHARS, max_size=8), st.integers(3500, 6000)
)
MULTI = st.builds(
    lambda parts, sep: sep.join(parts),
    st.lists(st.one_of(LINE_TEXT, TABBED), min_size=2, max_size=6),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
TEXTS = st.one_of(LINE_TEXT, TABBED, MULTI, LONG, st.builds("\n".join, st.lists(LONG, max_size=2)))


def must_refuse(program: Program, text: str) -> bool:
    body = sanitize_text(text)
    if not body.strip():
        return True
    lines = (label(SOURCE, "00000000") + body).split("\n")
    return program.canonical and max(len(s.encode()) + 1 for s in lines) > ttys.MAX_CANON_LINE


def check_one(panes: Panes, name: str, text: str) -> str:
    """Deliver ``text``; assert the outcome is exact or a clean refusal. Returns which."""
    program = panes.programs[name]
    before = len(panes.records(name))
    try:
        receipt = panes.deliver(name, text)
    except DeliveryError as exc:
        assert "\n" not in str(exc)
        assert must_refuse(program, text), f"refused: {exc}"
        sentinel = panes.deliver(name, "sentinel after a refusal")
        assert panes.arrived(name, before, program.expected(sentinel.text)) == program.expected(
            sentinel.text
        ), "something of the refused text arrived"
        return "refused"
    assert not must_refuse(program, text)
    assert receipt.verified is True
    assert receipt.text == f"[from {SOURCE} #{receipt.nonce}] " + sanitize_text(text)
    expected = program.expected(receipt.text)
    assert panes.arrived(name, before, expected) == expected
    return "exact"


PROPERTY_PROGRAMS = [one(p) for p in (LINE, INPUT, NOECHO, RAW, PTK, STUB)]


@pytest.mark.parametrize("panes", PROPERTY_PROGRAMS, indirect=True)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=TEXTS, twice=st.booleans())
@example(text="tabs\there\tand\tthere", twice=True)
@example(text="unicode: héllo — ✓ 日本語 🎉\nline two\r\nthree\rfour\n", twice=False)
@example(text="x" * 4074, twice=False)  # with the label: 4,094 bytes and the newline
@example(text="x" * 4075, twice=False)  # one more than a line reader takes whole
@example(text="\x1b[31mred\x1b[0m \x1b[201~ bell\x07 del\x7f $HOME #{pane_id} ;", twice=False)
def test_every_text_arrives_exactly_or_is_refused(panes: Panes, text: str, twice: bool) -> None:
    (name,) = panes.programs
    figures = FIGURES.setdefault(name, Counter())
    for _ in range(2 if twice else 1):
        outcome = check_one(panes, name, text)
        figures[outcome] += 1
        figures["verify truthful"] += 1  # check_one asserted verify matched what arrived


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    """``FLEET_DELIVERY_FIGURES=path`` keeps the per-program counts (docs/host.md)."""
    yield
    path = os.environ.get("FLEET_DELIVERY_FIGURES")
    if path and FIGURES:
        Path(path).write_text(json.dumps({k: dict(v) for k, v in FIGURES.items()}, indent=1))


@pytest.mark.parametrize("panes", [[LINE, INPUT, RAW, PTK, STUB]], indirect=True)
def test_identical_texts_are_two_verified_deliveries(panes: Panes) -> None:
    for name, program in panes.programs.items():
        before = len(panes.records(name))
        first = panes.deliver(name, "the same words")
        second = panes.deliver(name, "the same words")
        assert first.verified and second.verified
        assert first.nonce != second.nonce
        expected = program.expected(first.text) + program.expected(second.text)
        assert panes.arrived(name, before, expected) == expected


@pytest.mark.parametrize("panes", [[SLEEPER]], indirect=True)
def test_a_program_that_is_not_reading_is_refused_and_gets_nothing_later(panes: Panes) -> None:
    with pytest.raises(AgentBusyError, match=r"not reading its terminal \(.*sleep.*\); nothing"):
        panes.deliverer.deliver("sleeper", "typed into a sleep", source=SOURCE, force=True)
    wait_until(lambda: panes.reading("sleeper"), 20, what="the sleeper reads")
    sentinel = panes.deliver("sleeper", "after the sleep")
    assert panes.arrived("sleeper", 0, [sentinel.text]) == [sentinel.text]


@pytest.mark.parametrize("panes", [[HOLDER]], indirect=True)
def test_text_a_program_does_not_take_is_discarded_when_verify_fails(panes: Panes) -> None:
    """The program waits in select() on its terminal but reads nothing for 3 s: the
    delivery is typed, verify finds nothing read, and the text is flushed: when the
    program starts reading it never sees it."""
    wait_until(lambda: panes.reading("holder"), 20, what="the holder polls")
    panes.deliverer.verify_timeout = 0.5
    with pytest.raises(DeliveryError, match=r"read 0 of \d+ bytes.*discarded"):
        panes.deliverer.deliver("holder", "never read", source=SOURCE, force=True)
    panes.deliverer.verify_timeout = 5.0
    sentinel = panes.deliver("holder", "read after the hold")
    assert panes.arrived("holder", 0, [sentinel.text]) == [sentinel.text]


@pytest.mark.parametrize("panes", [[LAGGED]], indirect=True)
def test_a_retry_finds_its_earlier_copy_instead_of_typing_a_second(panes: Panes) -> None:
    """The program reads at once but draws 1.5 s late: verify gives up at 0.3 s. A retry
    of the same text types nothing: first it says the earlier copy may yet be accepted,
    then, once it is on the screen, returns the earlier copy's receipt."""
    deliverer = panes.deliverer
    deliverer.busy_window = 0.0
    deliverer.verify_timeout = 0.3
    text = "slow to show"
    with pytest.raises(DeliveryError, match="not accepted"):
        deliverer.deliver("lagged", text, source=SOURCE)
    with pytest.raises(DeliveryError, match="read by the program but not yet seen accepted"):
        deliverer.deliver("lagged", text, source=SOURCE)
    receipt = wait_until(lambda: _earlier(deliverer, text), 10, what="the earlier copy")
    assert (receipt.method, receipt.verified, receipt.evidence) == ("earlier", True, "screen")
    assert panes.arrived("lagged", 0, [receipt.text]) == [receipt.text]
    deliverer.verify_timeout = 5.0
    again = deliverer.deliver("lagged", text, source=SOURCE)  # a new delivery: typed
    assert again.nonce != receipt.nonce
    assert panes.arrived("lagged", 1, [again.text]) == [again.text]


def _earlier(deliverer: Deliverer, text: str) -> DeliveryReceipt | None:
    try:
        return deliverer.deliver("lagged", text, source=SOURCE)
    except DeliveryError as exc:
        assert "not yet seen accepted" in str(exc)
        return None


def test_a_retry_never_types_beside_a_draft(host_settings: Settings) -> None:
    roster = make_roster(draft("d1"))
    start_agents(host_settings, roster)
    deliverer = Deliverer(host_settings, roster, verify_timeout=0.5, busy_window=0.0)
    try:
        wait_until(lambda: "draft>" in _screen(deliverer, "d1"), 15, what="draft prompt")
        with pytest.raises(DeliveryError, match="still a draft"):
            deliverer.deliver("d1", "left on the line", source=SOURCE)
        with pytest.raises(DeliveryError, match=r"earlier copy .* still a draft.*not typed again"):
            deliverer.deliver("d1", "left on the line", source=SOURCE)
        assert _screen(deliverer, "d1").count("left on the line") == 1
    finally:
        deliverer.close()


def _screen(deliverer: Deliverer, name: str) -> str:
    return "".join(deliverer.control.command("capture-pane", "-p", "-t", pane_target(name)))
