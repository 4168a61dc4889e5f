"""The price table: US dollars per million tokens, per model, with an override file.

The defaults are the providers' list prices for the model names the runtimes send today;
``$FLEET_HOME/prices.yaml`` (``FLEET_PRICES_FILE``) adds models or replaces their prices::

    prices:
      claude-opus-5-5: {input: 5, output: 25, cache_read: 0.5, cache_write: 6.25}

A model name matches its own entry, else the longest entry it starts with followed by
``-`` (``claude-sonnet-4-5-20250929`` is priced as ``claude-sonnet-4-5``). A model with no
entry is still counted in tokens; its cost is unknown (never guessed as zero), and an
``unpriced_model`` event says so once per tenant and model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet_queue.errors import ConfigError
from fleet_queue.spend.usage import Tokens

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it: a budgets file of a thousand agents parses
in milliseconds, not a tenth of a second, on the tick's path."""
PRICES_FILE = "prices.yaml"
"""The override file's name in ``FLEET_HOME`` when ``FLEET_PRICES_FILE`` is unset."""


class Price(BaseModel):
    """Dollars per million tokens of each kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float = Field(default=0.0, ge=0)
    cache_write: float = Field(default=0.0, ge=0)

    def cost(self, tokens: Tokens) -> float:
        return (
            tokens.input * self.input
            + tokens.output * self.output
            + tokens.cache_read * self.cache_read
            + tokens.cache_write * self.cache_write
        ) / 1_000_000


def _p(input: float, output: float, cache_read: float, cache_write: float = 0.0) -> Price:
    return Price(input=input, output=output, cache_read=cache_read, cache_write=cache_write)


DEFAULT_PRICES: dict[str, Price] = {
    # Anthropic: cache write is the 5-minute write (1.25 x input), cache read 0.1 x input.
    "claude-opus-4-5": _p(5, 25, 0.5, 6.25),
    "claude-opus-4-1": _p(15, 75, 1.5, 18.75),
    "claude-opus-4": _p(15, 75, 1.5, 18.75),
    "claude-sonnet-4-5": _p(3, 15, 0.3, 3.75),
    "claude-sonnet-4": _p(3, 15, 0.3, 3.75),
    "claude-3-7-sonnet": _p(3, 15, 0.3, 3.75),
    "claude-haiku-4-5": _p(1, 5, 0.1, 1.25),
    "claude-3-5-haiku": _p(0.8, 4, 0.08, 1),
    # OpenAI: cached input at a tenth of input (a quarter for the 4.x family); no write price.
    "gpt-5": _p(1.25, 10, 0.125),
    "gpt-5-codex": _p(1.25, 10, 0.125),
    "gpt-5.1": _p(1.25, 10, 0.125),
    "gpt-5.1-codex": _p(1.25, 10, 0.125),
    "gpt-5.1-codex-max": _p(1.25, 10, 0.125),
    "gpt-5-mini": _p(0.25, 2, 0.025),
    "gpt-5.1-codex-mini": _p(0.25, 2, 0.025),
    "gpt-5-nano": _p(0.05, 0.4, 0.005),
    "gpt-5-pro": _p(15, 120, 15),
    "gpt-4.1": _p(2, 8, 0.5),
    "gpt-4.1-mini": _p(0.4, 1.6, 0.1),
    "gpt-4o": _p(2.5, 10, 1.25),
    "gpt-4o-mini": _p(0.15, 0.6, 0.075),
    "o3": _p(2, 8, 0.5),
    "o4-mini": _p(1.1, 4.4, 0.275),
}
"""List prices, US dollars per million tokens (input, output, cache read, cache write)."""


class PricesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prices: dict[str, Price] = Field(default_factory=dict)


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name."""

    prices: dict[str, Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def price(self, model: str) -> Price | None:
        """The model's own entry, else the longest entry it starts with followed by ``-``."""
        if model in self.prices:
            return self.prices[model]
        best = max(
            (name for name in self.prices if model.startswith(name + "-")), key=len, default=None
        )
        return self.prices[best] if best is not None else None

    def cost(self, model: str, tokens: Tokens) -> float | None:
        price = self.price(model)
        return None if price is None else price.cost(tokens)


def prices_path(home: Path, configured: Path | None) -> Path:
    return configured if configured is not None else home / PRICES_FILE


def load_prices(path: Path, *, required: bool = False) -> PriceTable:
    """The defaults with ``path``'s entries over them; a bad file is one line (ConfigError).
    A missing file is the defaults, unless it was named explicitly (``required``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such price file (FLEET_PRICES_FILE)") from None
        return PriceTable()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the price file ({exc.strerror})") from None
    try:
        parsed = PricesFile.model_validate(yaml.load(text, Loader=SAFE_LOADER) or {})
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML ({type(exc).__name__})") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{path}: {where}: {error['msg']}") from None
    return PriceTable({**DEFAULT_PRICES, **parsed.prices})
