#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine: install what the tests
# need when it is missing, then ruff, mypy and pytest (fast tier, then e2e tier).
# Exit non-zero on any failure. FLEET_TEST_BURN=2 runs it beside two CPU burners.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v tmux >/dev/null || need_apt+=(tmux)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v unshare >/dev/null || need_apt+=(util-linux)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v runuser >/dev/null || need_apt+=(util-linux)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)  # verifies the generated units; loginctl too
command -v chromium >/dev/null || need_apt+=(chromium chromium-driver)  # the console's browser tests
command -v npm >/dev/null || need_apt+=(nodejs npm)
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The package's postinst may start a cluster we do not use; tests start their own.
command -v pg_ctlcluster >/dev/null && { pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | while read -r v c; do pg_ctlcluster "$v" "$c" stop 2>/dev/null || true; done; }

# shellcheck source=scripts/venv.sh
. scripts/venv.sh
# shellcheck source=scripts/console.sh
. scripts/console.sh
# shellcheck source=scripts/runtimes.sh
. scripts/runtimes.sh
export PATH="$PWD/.venv/bin:$PATH"

status=0
echo "== ruff";  ruff check . || status=1; ruff format --check . || status=1
echo "== mypy";  mypy || status=1
# The fast tier first (no Celery process, minutes), then the end-to-end tier; both always run.
echo "== pytest: fast tier (-m 'not e2e')"
pytest -m "not e2e" "$@" || status=1
echo "== pytest: end-to-end tier (-m e2e)"
pytest -m e2e "$@" || status=1
exit $status
