#!/usr/bin/env bash
# Run the fleet's main job on the embedded default: install into .venv when
# needed, then `fleet demo` (stub agents, real tmux, Celery worker and beat).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tmux >/dev/null || { echo "installing tmux"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v -e '^WARNING: Location' || true
exec .venv/bin/fleet demo "$@"
