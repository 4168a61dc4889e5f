"""The real agent CLIs against the model double: each run in its own HOME and config dir.

The CLIs are pinned in runtimes/package.json and installed by scripts/runtimes.sh;
a missing one fails the test loudly (CI installs them), it is never a skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleet_queue.model_double import ModelDouble

REPO = Path(__file__).resolve().parents[2]
RUNTIME_BIN = REPO / ".cache" / "runtimes" / "node_modules" / ".bin"
CLI_TIMEOUT = 120.0  # one print-mode run takes ~1 s here; room for a loaded machine
KEY = "sk-ant-model-double-0123456789abcdef"


def runtime_binary(name: str) -> Path:
    path = RUNTIME_BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            raise RuntimeError(f"{name} is not installed: run scripts/runtimes.sh")
        path = Path(found)
    return path


@dataclass
class CliRun:
    """One CLI invocation's environment: a private HOME, config dir and working directory."""

    double: ModelDouble
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    def run(
        self, argv: list[str], user: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        merged = {**self.env, **env}
        if user is not None:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("runuser (util-linux) is not installed")
            pairs = [f"{k}={v}" for k, v in merged.items()]
            argv = [runuser, "-u", user, "--", "/usr/bin/env", *pairs, *argv]
        return subprocess.run(
            argv,
            env=merged,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )


def _base_env(root: Path, bin_dir: Path) -> dict[str, str]:
    (root / "home").mkdir(parents=True, exist_ok=True)
    (root / "work").mkdir(exist_ok=True)
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(root / "home"),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
    }


def claude_env(root: Path, double: ModelDouble, bin_dir: Path) -> dict[str, str]:
    return {
        **_base_env(root, bin_dir),
        "CLAUDE_CONFIG_DIR": str(root / "home" / "claude-config"),
        "ANTHROPIC_BASE_URL": double.url,
        "ANTHROPIC_API_KEY": KEY,
    }


def codex_env(root: Path, double: ModelDouble, bin_dir: Path) -> dict[str, str]:
    """A CODEX_HOME whose only provider is the double, on the Responses wire API. No login
    shell: /etc/profile would reset PATH, and the agent's `fleet` lives on the pane's PATH."""
    home = root / "codex"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        'model = "gpt-5-codex"\n'
        'model_provider = "double"\n'
        "allow_login_shell = false\n\n"
        "[model_providers.double]\n"
        'name = "Model double"\n'
        f'base_url = "{double.url}/v1"\n'
        'env_key = "MODEL_DOUBLE_API_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 2\n"
        "stream_max_retries = 2\n"
    )
    return {**_base_env(root, bin_dir), "CODEX_HOME": str(home), "MODEL_DOUBLE_API_KEY": KEY}


@pytest.fixture
def double() -> Iterator[ModelDouble]:
    with ModelDouble() as server:
        yield server


@pytest.fixture
def claude(tmp_path: Path, double: ModelDouble) -> CliRun:
    runtime_binary("claude")
    return CliRun(double, tmp_path, claude_env(tmp_path, double, RUNTIME_BIN))


@pytest.fixture
def codex(tmp_path: Path, double: ModelDouble) -> CliRun:
    runtime_binary("codex")
    return CliRun(double, tmp_path, codex_env(tmp_path, double, RUNTIME_BIN))


@pytest.fixture
def claude_as_nobody(double: ModelDouble) -> Iterator[CliRun]:
    """Claude Code run as the unprivileged `nobody`: the pinned install under .cache is
    private to its owner (0700), so the single-file binary is hard-linked (or copied)
    into a world-readable temp dir with a HOME owned by nobody."""
    if os.geteuid() != 0:
        raise RuntimeError("this fixture switches users with runuser: run the suite as root")
    nobody = pwd.getpwnam("nobody")
    root = Path(tempfile.mkdtemp(prefix="fq-nobody-"))
    try:
        root.chmod(0o755)
        bin_dir = root / "bin"
        bin_dir.mkdir(mode=0o755)
        bin_dir.chmod(0o755)  # whatever the umask (fleet code sets 077 in-process)
        binary = runtime_binary("claude").resolve()
        try:
            os.link(binary, bin_dir / "claude")
        except OSError:
            shutil.copy2(binary, bin_dir / "claude")
        env = claude_env(root, double, bin_dir)
        for sub in ("home", "work"):
            os.chown(root / sub, nobody.pw_uid, nobody.pw_gid)
        yield CliRun(double, root, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_codex_daemon_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Codex's TUI leaves a detached app-server per CODEX_HOME (~180 MB each): end every
    one whose home is under this session's temp dir, so no test leaves one running."""
    yield
    base = os.fsencode(str(tmp_path_factory.getbasetemp()))
    for pid in _codex_daemons_under(base):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _codex_daemons_under(base: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        homes = [e for e in environ if e.startswith(b"CODEX_HOME=")]
        if b"app-server" in cmdline and homes and homes[0][len(b"CODEX_HOME=") :].startswith(base):
            found.append(int(entry.name))
    return found
