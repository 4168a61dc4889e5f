# Sourced by demo.sh and test.sh: create .venv when missing and install
# fleet-queue[dev] into it. pip's output goes to .venv/install.log; a failed
# install prints that log and stops the calling script.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "== installing fleet-queue[dev] (log: .venv/install.log)"
if ! .venv/bin/python -m pip install -e '.[dev]' >.venv/install.log 2>&1; then
  cat .venv/install.log >&2
  echo "installing fleet-queue[dev] failed (log above)" >&2
  exit 1
fi
