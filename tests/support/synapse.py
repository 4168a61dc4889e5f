"""A real Matrix homeserver (Synapse, from PyPI) on loopback for the chat connector's tests.

Offline: SQLite in a temp dir, no federation listener, no trusted key servers, presence
and URL previews off, rate limits out of the way. Users are made with Synapse's own
``register_new_matrix_user`` and the shared secret of the generated config. The people
in a test talk through ``MatrixUser``: plain client-server API calls (urllib), so the
test does not lean on the library the connector itself uses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.servers import free_port

SERVER_NAME = "localhost"
BIN = Path(sys.executable).parent


@dataclass
class MatrixUser:
    url: str
    user_id: str
    token: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return call(self.url, method, path, body, token=self.token)

    def create_room(self, invite: list[str]) -> str:
        answer = self.call("POST", "/createRoom", {"preset": "private_chat", "invite": invite})
        return str(answer["room_id"])

    def join(self, room: str) -> None:
        self.call("POST", f"/join/{urllib.parse.quote(room)}", {})

    def invite(self, room: str, user_id: str) -> None:
        self.call("POST", f"/rooms/{urllib.parse.quote(room)}/invite", {"user_id": user_id})

    def say(self, room: str, text: str) -> str:
        path = f"/rooms/{urllib.parse.quote(room)}/send/m.room.message/{uuid.uuid4().hex}"
        answer = self.call("PUT", path, {"msgtype": "m.text", "body": text})
        return str(answer["event_id"])

    def messages(self, room: str) -> list[dict[str, Any]]:
        """The room's m.room.message events, oldest first."""
        query = urllib.parse.urlencode({"dir": "b", "limit": 500})
        answer = self.call("GET", f"/rooms/{urllib.parse.quote(room)}/messages?{query}")
        events = [e for e in answer["chunk"] if e.get("type") == "m.room.message"]
        return list(reversed(events))

    def joined(self, room: str) -> list[str]:
        answer = self.call("GET", f"/rooms/{urllib.parse.quote(room)}/joined_members")
        return list(answer["joined"])


def call(
    url: str, method: str, path: str, body: dict[str, Any] | None = None, *, token: str = ""
) -> Any:
    request = urllib.request.Request(
        f"{url}/_matrix/client/v3{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None


@dataclass
class Synapse:
    url: str
    config: Path
    log: Path
    process: subprocess.Popen[bytes]

    def connector_block(self, bot_id: str, room: str, allow: list[str]) -> dict[str, Any]:
        """The roster's ``connector:`` for the bot in one room with its allow-list."""
        return {
            "kind": "matrix",
            "homeserver": self.url,
            "user_id": bot_id,
            "rooms": {room: {"allow": allow}},
        }

    def register(self, name: str, password: str, *, admin: bool = False) -> str:
        """A user made with Synapse's own tool; returns its user id."""
        subprocess.run(
            [str(BIN / "register_new_matrix_user"), "-c", str(self.config), "-u", name,
             "-p", password, "--admin" if admin else "--no-admin", self.url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        return f"@{name}:{SERVER_NAME}"

    def login(self, name: str, password: str) -> MatrixUser:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": password,
        }
        answer = call(self.url, "POST", "/login", body)
        return MatrixUser(self.url, answer["user_id"], answer["access_token"])


def write_config(directory: Path, port: int) -> Path:
    config = directory / "homeserver.yaml"
    subprocess.run(
        [sys.executable, "-m", "synapse.app.homeserver", "--server-name", SERVER_NAME,
         "--config-path", str(config), "--generate-config", "--report-stats=no",
         "--data-directory", str(directory / "data")],
        check=True, capture_output=True, timeout=120, cwd=directory,
    )  # fmt: skip
    data = yaml.safe_load(config.read_text())
    limits = {"per_second": 1000, "burst_count": 1000}
    data.update(
        listeners=[
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        trusted_key_servers=[],
        suppress_key_server_warning=True,
        presence={"enabled": False},
        url_preview_enabled=False,
        federation_domain_whitelist=[],
        enable_registration=False,
        rc_message=limits,
        rc_login={"address": limits, "account": limits, "failed_attempts": limits},
        rc_registration=limits,
        rc_joins={"local": limits, "remote": limits},
        rc_invites={"per_room": limits, "per_user": limits},
    )
    config.write_text(yaml.safe_dump(data))
    return config


@contextmanager
def synapse_server(timeout: float = 120.0) -> Iterator[Synapse]:
    """Synapse on a free loopback port; stopped (its whole process group) after."""
    with tempfile.TemporaryDirectory(prefix="fq-synapse-") as tmp:
        directory = Path(tmp)
        port = free_port()
        config = write_config(directory, port)
        log = directory / "stdout.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=directory, start_new_session=True,
            )  # fmt: skip
        server = Synapse(f"http://127.0.0.1:{port}", config, log, process)
        try:
            _wait_up(server, timeout)
            yield server
        finally:
            stop_group(process)


def _wait_up(server: Synapse, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"synapse exited: {server.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/_matrix/client/versions", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"synapse not up after {timeout}s: {server.log.read_text()[-2000:]}")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's whole group (started with a session of its own), then KILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def synapse() -> Iterator[Synapse]:
    """One homeserver for the session (import this fixture into the test module)."""
    with synapse_server() as server:
        yield server
