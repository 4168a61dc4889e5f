"""The one typed settings object of fleet-queue.

Every knob is a ``FLEET_*`` environment variable with a documented default, so a
fleet is configured the same way on every host and in every container. Nothing
here reads the roster: the roster says *what* runs, settings say *where*.
"""

from __future__ import annotations

import os
import re
import socket
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleet_queue import layout
from fleet_queue.errors import ConfigError
from fleet_queue.limits import DEFAULT_MAX_CARD_BYTES
from fleet_queue.names import HostName, SocketName, TenantName
from fleet_queue.private import mode_problem

DEFAULT_HOME = Path(layout.DEFAULT_HOME)
YEAR = 365 * 24 * 3600.0
"""Upper bound of every period and lifetime: beyond it a timestamp overflows, and no fleet
means it (``inf`` and ``nan`` are refused too: a lease that never ends dispatches nothing)."""
ENV_FILE_NAME = "fleet.env"
"""Optional ``FLEET_*=...`` file in home (mode 0600): where secrets such as database and
broker passwords live, so an agent's ``fleet card done`` can reach the store without the
password ever being put in the pane's environment."""


class Settings(BaseSettings):
    """Effective configuration; build one per process and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="FLEET_", extra="ignore", frozen=True, allow_inf_nan=False
    )

    home: Path = Field(default=DEFAULT_HOME, description="State directory: roster, store, run/.")
    # The URLs may hold a password: kept out of ``repr`` (shown masked by ``masked()``).
    database_url: str | None = Field(
        default=None,
        repr=False,
        description="SQLAlchemy URL of the card store; default SQLite in home.",
    )
    broker_url: str | None = Field(
        default=None,
        repr=False,
        description="Celery broker URL; default the embedded Redis under home.",
    )
    broker_tls_verify: bool = Field(
        default=True,
        description="Verify a rediss:// broker's certificate and host name (false: warned).",
    )
    broker_ca_file: Path | None = Field(
        default=None, description="CA bundle (PEM) for a rediss:// broker; default the system's."
    )
    tmux_socket: SocketName = Field(default="fleet", description="tmux socket name (-L).")
    tenant: TenantName = Field(
        default=layout.DEFAULT_TENANT, description="Tenant id stamped on every record."
    )
    host: HostName = Field(default_factory=socket.gethostname, description="Stable host identity.")
    roster_path: Path | None = Field(
        default=None, description="Roster file; default home/roster.yaml."
    )
    heartbeat_interval: float = Field(
        default=5.0, gt=0, le=YEAR, description="Seconds between heartbeats."
    )
    lease_ttl: float = Field(
        default=600.0, gt=0, le=YEAR, description="Seconds a claim lives unrenewed."
    )
    card_timeout: float = Field(
        default=14400.0,
        ge=0,
        le=YEAR,
        description="Seconds after delivery that a working agent's lease is still renewed.",
    )
    max_attempts: int = Field(
        default=3, ge=1, le=1000, description="Claims before a card is failed."
    )
    tick_interval: float = Field(
        default=5.0, gt=0, le=YEAR, description="Beat: supervisor tick period (s)."
    )
    reclaim_interval: float = Field(
        default=15.0, gt=0, le=YEAR, description="Beat: reclaim period (s)."
    )
    host_status_interval: float = Field(
        default=5.0, gt=0, le=YEAR, description="Beat: host status period."
    )
    nudge: bool = Field(default=True, description="Send a tick at once on enqueue/complete.")
    task_events: bool = Field(
        default=True,
        description="Workers send Celery task events (Flower's task pages); off saves CPU.",
    )
    local_delivery: bool = Field(
        default=True,
        description="A host worker that also runs the tick types this host's claims itself,"
        " with no delivery message.",
    )
    local_tick: bool = Field(
        default=True,
        description="A worker ticks in a thread of its own when a change it committed (an"
        " agent's close through its socket) can free work, instead of sending a tick message.",
    )
    restart_max: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="Restarts of one agent within the restart window before it is broken.",
    )
    restart_window: float = Field(
        default=600.0,
        gt=0,
        le=YEAR,
        description="Seconds over which an agent's restarts are counted for its breaker.",
    )
    brief_at_start: bool = Field(
        default=True, description="Type each agent's brief into its pane once per session start."
    )
    # SecretStr: shown as ``**********`` by repr, str and logs; ``reveal()`` where it is used.
    flower_auth: SecretStr | None = Field(
        default=None, description="Flower basic auth user:password."
    )
    board_auth: SecretStr | None = Field(
        default=None, description="Web board basic auth user:password."
    )
    console_take_control: bool = Field(
        default=False,
        description="Console: offer 'take control' (raw keystrokes into one agent's pane).",
    )
    console_read_only: bool = Field(
        default=False,
        description="Console: watch only; no action is offered and every write is refused.",
    )
    matrix_password: SecretStr | None = Field(
        default=None, description="Chat connector: the Matrix bot's password."
    )
    matrix_token: SecretStr | None = Field(
        default=None, description="Chat connector: the Matrix bot's access token."
    )
    telegram_token: SecretStr | None = Field(
        default=None, description="Chat connector: the Telegram bot's token (from @BotFather)."
    )
    slack_bot_token: SecretStr | None = Field(
        default=None, description="Chat connector: the Slack app's bot token (xoxb-...)."
    )
    slack_app_token: SecretStr | None = Field(
        default=None,
        description="Chat connector: the Slack app-level token for Socket Mode (xapp-...).",
    )
    discord_token: SecretStr | None = Field(
        default=None, description="Chat connector: the Discord bot's token."
    )
    chat_reply_timeout: float = Field(
        default=1800.0,
        gt=0,
        le=YEAR,
        description="Seconds a chat message waits for its turn's reply before it is failed.",
    )
    chat_reply_retry: float = Field(
        default=900.0,
        gt=0,
        le=YEAR,
        description="Seconds a chat reply the network keeps failing for a passing reason"
        " is tried again before its message is failed.",
    )
    max_card_bytes: int = Field(
        default=DEFAULT_MAX_CARD_BYTES,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest card text (title, body, acceptance) in UTF-8 bytes.",
    )
    prices_file: Path | None = Field(
        default=None, description="Model price overrides (docs/spend.md); default home/prices.yaml."
    )
    budgets_file: Path | None = Field(
        default=None, description="Spend budgets (docs/spend.md); default home/budgets.yaml."
    )

    @field_validator(
        "home", "roster_path", "prices_file", "budgets_file", "broker_ca_file", mode="after"
    )
    @classmethod
    def _expand(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        value = value.expanduser()
        if info.field_name == "home" and value.exists() and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        if info.field_name == "roster_path" and value.is_dir():
            raise ValueError(f"{value} is a directory, not a roster file")
        if info.field_name == "broker_ca_file" and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    @field_validator("broker_url", "database_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        problem = url_problem(value)
        if problem is None and info.field_name == "database_url" and "home" in info.data:
            problem = sqlite_dir_problem(value, info.data["home"])
        if problem:
            raise ValueError(problem)
        return value

    @cached_property
    def run_dir(self) -> Path:
        """Heartbeats, the PAUSED flag and sockets live here."""
        return self.home / layout.RUN_DIR

    @cached_property
    def effective_roster_path(self) -> Path:
        return self.roster_path or self.home / "roster.yaml"

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'fleet.db'}"

    @cached_property
    def embedded_broker_socket(self) -> Path:
        return self.run_dir / "redis.sock"

    @cached_property
    def effective_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"redis+socket://{self.embedded_broker_socket}"

    @property
    def broker_is_embedded(self) -> bool:
        return not self.broker_url

    def masked(self) -> dict[str, object]:
        """The effective configuration as plain data, passwords replaced by ``***``."""
        return {
            "home": str(self.home),
            "database_url": mask_url(self.effective_database_url),
            "broker_url": mask_url(self.effective_broker_url),
            "broker_embedded": self.broker_is_embedded,
            "broker_tls_verify": self.broker_tls_verify,
            "broker_ca_file": str(self.broker_ca_file) if self.broker_ca_file else None,
            "tmux_socket": self.tmux_socket,
            "tenant": self.tenant,
            "host": self.host,
            "roster_path": str(self.effective_roster_path),
            "heartbeat_interval": self.heartbeat_interval,
            "lease_ttl": self.lease_ttl,
            "card_timeout": self.card_timeout,
            "max_attempts": self.max_attempts,
            "tick_interval": self.tick_interval,
            "reclaim_interval": self.reclaim_interval,
            "host_status_interval": self.host_status_interval,
            "nudge": self.nudge,
            "task_events": self.task_events,
            "local_delivery": self.local_delivery,
            "local_tick": self.local_tick,
            "flower_auth": "***" if self.flower_auth else None,
            "board_auth": "***" if self.board_auth else None,
            "matrix_password": "***" if self.matrix_password else None,
            "matrix_token": "***" if self.matrix_token else None,
            "telegram_token": "***" if self.telegram_token else None,
            "slack_bot_token": "***" if self.slack_bot_token else None,
            "slack_app_token": "***" if self.slack_app_token else None,
            "discord_token": "***" if self.discord_token else None,
            "chat_reply_timeout": self.chat_reply_timeout,
            "chat_reply_retry": self.chat_reply_retry,
            "max_card_bytes": self.max_card_bytes,
        }


def reveal(secret: SecretStr | str | None) -> str | None:
    """A secret setting's value, at the one place that hands it on (never to print)."""
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a URL the fleet can use (scheme://...), in one line; None if it is."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check (out of range raises)
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if not parts.scheme or "://" not in url:
        return f"{mask_url(url)!r} is not a URL (expected scheme://...)"
    if any(ch.isspace() for ch in url):
        return "a URL must not contain whitespace"
    return None


def sqlite_dir_problem(url: str, home: Path) -> str | None:
    """A SQLite store outside ``home`` whose directory does not exist: a typo, refused
    before any command creates that directory and an empty store in it."""
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    parent = Path(path).expanduser().absolute().parent
    if parent.is_dir() or parent.is_relative_to(home.expanduser().absolute()):
        return None
    return f"the directory {parent} of the SQLite store does not exist (create it, or fix the URL)"


SECRET_QUERY_RE = re.compile(
    r"(^|[&;])([^=&;]*(?:pass|pwd|token|secret|api_?key|auth|credential)[^=&;]*)=([^&;]*)",
    re.IGNORECASE,
)
"""Query parameters that carry a secret: ``?password=``, ``?pass=``, ``?token=``, ``?apikey=``..."""


def mask_url(url: str) -> str:
    """Hide the password of a URL (userinfo and secret query parameters) to print or log it."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:
        return "***"  # not parseable: show nothing rather than a secret
    query = SECRET_QUERY_RE.sub(r"\1\2=***", parts.query)
    if password is None:  # keep the URL as written (``sqlite:////abs`` has an empty netloc)
        return url if query == parts.query else url.replace(f"?{parts.query}", f"?{query}", 1)
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" if user else f":***@{host}"
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI options) on top."""
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        home = Path(str(clean.get("home") or os.environ.get("FLEET_HOME") or DEFAULT_HOME))
        env_file = home.expanduser() / ENV_FILE_NAME
        if env_file.is_file() and (problem := mode_problem(env_file, ENV_FILE_NAME)):
            raise ConfigError(f"refusing to load {problem}")
        return Settings(_env_file=env_file if env_file.is_file() else None, **clean)  # type: ignore[arg-type]
    except (UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{ENV_FILE_NAME}: cannot be read: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"FLEET_{field.upper()}: {message}") from None
