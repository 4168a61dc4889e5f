"""The roster's ``connector:`` block, read for the chat connector.

    connector:
      kind: matrix                        # the network; ``tmux`` (the old default) means none
      agent: orchestrator                 # who answers; default the roster's orchestrator
      homeserver: https://matrix.example.org
      user_id: "@fleet:example.org"
      device_id: FLEETCONNECTOR           # optional; keeps reply transaction ids in one scope
      rooms:
        "!roomid:example.org":
          allow: ["@alice:example.org"]   # only these people reach the orchestrator
          notices: true                   # fleet notices to this room (failed/blocked, dead)

Secrets are never here: the bot's password or token come from the environment
(``FLEET_MATRIX_PASSWORD`` / ``FLEET_MATRIX_TOKEN``, ``FLEET_TELEGRAM_TOKEN``,
``FLEET_SLACK_BOT_TOKEN`` + ``FLEET_SLACK_APP_TOKEN``, ``FLEET_DISCORD_TOKEN``; see
``Settings``). ``api_url`` points Telegram, Slack or Discord at another API server (a
self-hosted Telegram Bot API server, a proxy; the tests' loopback servers).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet_queue.errors import ConfigError
from fleet_queue.roster import ORCHESTRATOR, Roster, load_roster
from fleet_queue.settings import Settings

REQUIRED: dict[str, tuple[str, ...]] = {
    "matrix": ("homeserver", "user_id"),
    "telegram": (),
    "slack": (),
    "discord": (),
}
"""The networks with an adapter (``fleet_queue.connector.<kind>``), and the keys each needs."""
NETWORKS = tuple(REQUIRED)
NO_CONNECTOR = "tmux"
"""The ``kind`` a roster had before there was a chat connector: none configured."""


class RoomConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    allow: tuple[str, ...] = ()
    """Senders whose messages reach the orchestrator; everyone else is refused and logged."""
    notices: bool = False


class ChatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    agent: str | None = None
    homeserver: str | None = None
    user_id: str | None = None
    device_id: str = "FLEETCONNECTOR"
    api_url: str | None = None
    rooms: dict[str, RoomConfig] = Field(default_factory=dict)

    def allowed(self, room: str, sender: str) -> bool:
        """Only a listed sender in a listed room: an empty or missing list lets nobody in."""
        config = self.rooms.get(room)
        return config is not None and sender in config.allow

    def notice_rooms(self) -> list[str]:
        return [room for room, config in self.rooms.items() if config.notices]


def chat_config(roster: Roster) -> ChatConfig | None:
    """The connector's configuration; None when the roster configures no chat network.

    A block that names an unknown network or misses what its network needs is a
    ``ConfigError`` with one line.
    """
    block = roster.connector
    if block is None or block.kind == NO_CONNECTOR:
        return None
    data = {"kind": block.kind, **(block.model_extra or {})}
    try:
        config = ChatConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"roster connector.{where}: {first['msg']}") from None
    if config.kind not in NETWORKS:
        raise ConfigError(
            f"roster connector.kind: {config.kind!r} has no adapter (have: {', '.join(NETWORKS)})"
        )
    for key in REQUIRED[config.kind]:
        if not getattr(config, key):
            raise ConfigError(f"roster connector.{key}: required for kind {config.kind}")
    if not config.rooms:
        raise ConfigError("roster connector.rooms: name at least one room and who may talk")
    return config


def answering_agent(roster: Roster, config: ChatConfig) -> str:
    """The agent chat messages go to: ``connector.agent``, else the roster's orchestrator."""
    if config.agent is not None:
        return roster.known(config.agent).name
    found = [a.name for a in roster.agents if a.agent_class == ORCHESTRATOR]
    if len(found) != 1:
        raise ConfigError(
            "roster connector.agent: name the agent that answers chat"
            f" (the roster has {len(found)} orchestrators)"
        )
    return found[0]


def connector_runs_here(settings: Settings) -> bool:
    """Whether ``fleet up`` on this host runs the chat connector: the roster configures one
    and its answering agent runs here (the connector types into that agent's pane)."""
    if not settings.effective_roster_path.is_file():
        return False
    return local_answering_agent(load_roster(settings.effective_roster_path), settings) is not None


def local_answering_agent(roster: Roster, settings: Settings) -> str | None:
    """The answering agent when it runs on this host (so the connector does), else None."""
    config = chat_config(roster)
    if config is None:
        return None
    agent = roster.agent(answering_agent(roster, config))
    return agent.name if agent.host_or(settings.host) == settings.host else None
