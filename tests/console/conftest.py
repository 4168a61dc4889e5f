"""The console under test: stub agents in real tmux panes (the in-process pipeline: real
store, real Redis, the tick and deliveries run by the test), ``fleet board --serve`` as
its own process on loopback with a login, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.settings import Settings
from tests.support.pipeline import Pipeline, inprocess_pipeline
from tests.support.servers import RedisServer, free_port, wait_for_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the closed network refuses Google's hosts
    "--disable-component-update",
    "--disable-sync",
]
USER, PASSWORD = "ops", "console-pw-5"
FLEET = [sys.executable, "-m", "fleet_queue"]


@dataclass
class ConsoleServer:
    url: str
    proc: subprocess.Popen[str]
    pipeline: Pipeline

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=20)


def console_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The pipeline's settings as the environment a real ``fleet`` process reads; ``extra``
    overrides, and an empty value removes a variable (``FLEET_BOARD_AUTH=""``: token login)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(
        FLEET_HOME=str(settings.home),
        FLEET_HOST=settings.host,
        FLEET_TMUX_SOCKET=settings.tmux_socket,
        FLEET_BROKER_URL=settings.broker_url or "",
        FLEET_HEARTBEAT_INTERVAL=str(settings.heartbeat_interval),
        # No host worker reports in the background here: the test reports when it changes
        # something, so the console trusts a status row for a few times 20 s.
        FLEET_HOST_STATUS_INTERVAL="20",
        FLEET_NUDGE="0",
        FLEET_BOARD_AUTH=f"{USER}:{PASSWORD}",
    )
    env.update(extra)
    return {k: v for k, v in env.items() if v or k not in extra}


@pytest.fixture
def console_extra_env() -> dict[str, str]:
    """More environment for the console process (a test module overrides this fixture)."""
    return {}


@pytest.fixture
def console_args() -> list[str]:
    """More arguments for ``fleet board --serve`` (a test module overrides this fixture)."""
    return []


@pytest.fixture
def console(
    tmp_path: Path,
    redis_srv: RedisServer,
    settings: Settings,
    slowness: float,
    console_extra_env: dict[str, str],
    console_args: list[str],
) -> Iterator[ConsoleServer]:
    """Stub agent ``a1`` (cards take 4 s) in tmux, and the console serving its fleet."""
    agents: list[dict[str, Any]] = [
        {"name": "a1", "runtime": "stub", "class": "implementer",
         "env": {"FLEET_NUDGE": "0", "FLEET_STUB_WORK": "4"}},
    ]  # fmt: skip
    roster = {"version": 1, "preset": "minimal", "agents": agents}
    with inprocess_pipeline(
        tmp_path / "fleet", redis_srv.url, settings.tmux_socket, roster,
        start_timeout=15 * slowness,
    ) as pipeline:  # fmt: skip
        port = free_port()
        log = (tmp_path / "console.log").open("w")
        proc = subprocess.Popen(
            [*FLEET, "board", "--serve", "--port", str(port), *console_args],
            env=console_env(pipeline.settings, **console_extra_env),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        server = ConsoleServer(f"http://127.0.0.1:{port}", proc, pipeline)
        try:
            try:
                wait_for_port("127.0.0.1", port, timeout=30 * slowness)
            except RuntimeError:
                log.flush()
                said = (tmp_path / "console.log").read_text()
                raise AssertionError(
                    f"the console did not listen (exit {proc.poll()}): {said}"
                ) from None
            yield server
        finally:
            server.stop()
            log.close()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium (apt: chromium), headless; Playwright downloads no browser."""
    if not Path(CHROMIUM).is_file() or shutil.which("chromium") is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any, console: ConsoleServer) -> Iterator[Any]:
    """A fresh browser page logged in to the console, 1280 px wide."""
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900},
        http_credentials={"username": USER, "password": PASSWORD},
    )
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
