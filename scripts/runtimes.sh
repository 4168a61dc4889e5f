# Sourced by test.sh (and usable alone): install Node when missing and the pinned
# agent CLIs of runtimes/package.json into .cache/runtimes, then put their bin on PATH.
# A second run with the same pins installs nothing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing nodejs npm"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
_rt_dir="$PWD/.cache/runtimes"
mkdir -p "$_rt_dir"
chmod 700 "$PWD/.cache"
_rt_missing=""
for _rt_bin in claude codex pi opencode; do
  [ -x "$_rt_dir/node_modules/.bin/$_rt_bin" ] || _rt_missing="$_rt_missing $_rt_bin"
done
if ! cmp -s runtimes/package.json "$_rt_dir/package.json" || ! cmp -s runtimes/package-lock.json "$_rt_dir/package-lock.json" || [ -n "$_rt_missing" ]; then
  echo "== installing agent CLIs (runtimes/package.json; log: .cache/runtimes/install.log)"
  cp runtimes/package.json "$_rt_dir/package.json"
  [ -f runtimes/package-lock.json ] && cp runtimes/package-lock.json "$_rt_dir/package-lock.json"
  if ! (cd "$_rt_dir" && npm install --no-audit --no-fund --loglevel=error >install.log 2>&1); then
    cat "$_rt_dir/install.log" >&2
    echo "installing the agent CLIs failed (log above)" >&2
    exit 1
  fi
fi
export PATH="$_rt_dir/node_modules/.bin:$PATH"
