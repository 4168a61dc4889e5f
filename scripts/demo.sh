#!/usr/bin/env bash
# Run the fleet's main job on the embedded default: install into .venv when
# needed, then `fleet demo` (stub agents, real tmux, Celery worker and beat).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tmux >/dev/null || { echo "installing tmux"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; }
# shellcheck source=scripts/venv.sh
. scripts/venv.sh
# shellcheck source=scripts/console.sh
. scripts/console.sh
exec .venv/bin/fleet demo "$@"
