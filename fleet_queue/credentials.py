"""Where a secret may be, and where it must never be: argv, the roster, a pane.

- **argv** is readable by every local user (``/proc/PID/cmdline``, ``ps``): Flower's
  ``user:password`` goes through its environment (``FLOWER_BASIC_AUTH``), not
  ``--basic-auth``.
- **the roster** is a shared, often versioned file: an ``env:`` entry whose *name*
  looks like a secret must be a ``${VAR}`` reference, and no value may carry a URL with
  a password (``scheme://user:pw@host``) or a secret query parameter, whatever its name.
  Names that hold a path, not a secret (``*_FILE``, ``*_PATH``, ``*_SOCK``, ``*_DIR``),
  are allowed as literals.
- **a pane's environment** gets store and broker URLs only when they carry no secret
  (``workers.runtimes.pane_env`` compares with :func:`fleet_queue.settings.mask_url`).
- **the tmux server's environment**, which every pane inherits, gets none of the
  worker's infrastructure secrets (:func:`tmux_safe`): a password-like name
  (``PGPASSWORD``, ``REDISCLI_AUTH``, ``*PASSWORD*``, ``*_AUTH``...) or any value
  holding a URL with a password. Model API keys and tokens stay: a runtime needs them.
"""

from __future__ import annotations

import re

from fleet_queue.settings import Settings, mask_url, reveal

SECRET_NAME_RE = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|PGPASS|(^|_)PASS($|_)|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY"
    r"|(^|_)KEY$|(^|_)AUTH($|_)|CREDENTIAL|COOKIE|SESSION_?ID|(^|_)DSN$",
    re.IGNORECASE,
)
"""``DB_PASS``, ``PGPASSWORD``, ``GITHUB_TOKEN``, ``ANTHROPIC_API_KEY``, ``AWS_SECRET_ACCESS_KEY``,
``BASIC_AUTH``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``SENTRY_DSN``, ``SIGNING_KEY``..."""

PATH_NAME_RE = re.compile(r"_(FILE|PATH|SOCK|DIR)$", re.IGNORECASE)
"""A name that holds where a secret is, not the secret (``PGPASSFILE`` is not one: it is
refused, the rule prefers a false alarm to a leak; ``PGPASS_FILE`` is fine)."""

ENV_REF_RE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
URL_IN_TEXT_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def looks_secret(name: str) -> bool:
    """Whether an environment variable called ``name`` would hold a secret."""
    return bool(SECRET_NAME_RE.search(name)) and not PATH_NAME_RE.search(name)


def carries_secret(value: str) -> bool:
    """Whether ``value`` holds a URL with a password or a secret query parameter."""
    return any(mask_url(url) != url for url in URL_IN_TEXT_RE.findall(value))


TMUX_STRIPPED_RE = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|PGPASS|(^|_)PASS$|(^|_)AUTH$|CREDENTIAL|(^|_)DSN$"
    r"|^(DATABASE_URL|REDIS_URL|BROKER_URL|CELERY_BROKER_URL|CELERY_RESULT_BACKEND)$",
    re.IGNORECASE,
)
"""Names the tmux server never inherits from the worker (docs/security.md#secrets): the
store's and broker's credentials (``PGPASSWORD``, ``PGPASSFILE``, ``REDISCLI_AUTH``,
``FLOWER_BASIC_AUTH``, ``DATABASE_URL``...). Not ``*_API_KEY``/``*_TOKEN``: agents use them."""


def tmux_safe(name: str, value: str) -> bool:
    """Whether the worker's ``name=value`` may reach the tmux server (and so every pane)."""
    return not TMUX_STRIPPED_RE.search(name) and not carries_secret(value)


def roster_env_problem(name: str, value: str) -> str | None:
    """Why a roster ``env:`` entry must not be written so, in one line; None if it may."""
    if ENV_REF_RE.match(value):
        return None
    if looks_secret(name):
        return "secrets never live in the roster; use ${VAR} from the environment"
    if carries_secret(value):
        return "a URL with a password never lives in the roster; use ${VAR} from the environment"
    return None


def flower_environment(settings: Settings) -> dict[str, str]:
    """Flower's login through its environment: ``FLOWER_*`` variables are its options, and
    unlike ``--basic-auth=user:password`` they are not in ``/proc/PID/cmdline``."""
    auth = reveal(settings.flower_auth)
    return {"FLOWER_BASIC_AUTH": auth} if auth else {}
