# Sourced by demo.sh and test.sh: install the web console's front-end libraries
# (fleet_queue/console/static/package.json, versions pinned by its package-lock.json)
# into fleet_queue/console/static/node_modules, which the console serves from.
# Needs Node.js and npm (Debian: nodejs npm); the log goes to .venv/console-npm.log.
CONSOLE_ASSETS=fleet_queue/console/static
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "== installing nodejs npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -f "$CONSOLE_ASSETS/node_modules/.package-lock.json" ] \
   || [ "$CONSOLE_ASSETS/package-lock.json" -nt "$CONSOLE_ASSETS/node_modules/.package-lock.json" ]; then
  echo "== installing the console's front-end libraries (log: .venv/console-npm.log)"
  if ! npm ci --prefix "$CONSOLE_ASSETS" --no-audit --no-fund >.venv/console-npm.log 2>&1; then
    cat .venv/console-npm.log >&2
    echo "installing the console's front-end libraries failed (log above)" >&2
    exit 1
  fi
fi
