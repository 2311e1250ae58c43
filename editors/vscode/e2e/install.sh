#!/usr/bin/env bash
# Prerequisites of the real-VS Code tests (tests/vscode_e2e/), installed idempotently:
#   - Debian: chromium, fonts-dejavu-core, ripgrep (needs root; skipped when present);
#   - code-server $CODE_SERVER_VERSION from the npm registry, built into a cache OUTSIDE the
#     clone ($HELIOS_CACHE/code-server-<version>/), so a fresh clone reuses it;
#   - Playwright for Python into the venv (the `vscode-e2e` extra of pyproject.toml).
# Usage: bash editors/vscode/e2e/install.sh   (from anywhere; the venv must exist).
# code-server's own install scripts download ripgrep and Node headers from hosts that are
# not reachable here, so they are skipped (--ignore-scripts) and their work done by hand.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
# The last release that runs on Node 20; tests/vscode_e2e reads the same file.
CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-$(cat "$here/code-server-version")}"
HELIOS_CACHE="${HELIOS_CACHE:-$HOME/.cache/helios}"
dest="$HELIOS_CACHE/code-server-$CODE_SERVER_VERSION"
PY="${PY:-$repo/.venv/bin/python}"
t0=$(date +%s)

# --- Debian packages -------------------------------------------------------------------
missing=()
for pkg in chromium fonts-dejavu-core ripgrep; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install.sh: missing Debian packages (${missing[*]}); run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "install.sh: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

# --- code-server -----------------------------------------------------------------------
if [ ! -f "$dest/.built" ]; then
  command -v node >/dev/null && command -v npm >/dev/null || { echo "install.sh: Node.js/npm missing" >&2; exit 1; }
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$node_major" = 20 ] || echo "install.sh: warning: code-server $CODE_SERVER_VERSION wants Node 20, found $(node --version)" >&2
  echo "install.sh: building code-server $CODE_SERVER_VERSION into $dest (one time, about a minute or two)"
  stage="$dest.tmp.$$"
  rm -rf "$stage"; mkdir -p "$stage"
  trap 'rm -rf "$stage"' EXIT
  npm install --prefix "$stage" --ignore-scripts --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION"
  cs="$stage/node_modules/code-server"
  nodedir=/usr   # Debian's Node ships its headers in /usr/include/node
  # argon2 is loaded even with --auth none.
  (cd "$stage" && npm_config_nodedir=$nodedir npm_config_build_from_source=true npm rebuild argon2 --loglevel=error)
  (cd "$cs/lib/vscode" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
  gyp="$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
  [ -f "$gyp" ] || gyp="/usr/share/nodejs/node-gyp/bin/node-gyp.js"
  [ -f "$gyp" ] || gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
  for mod in @vscode/spdlog native-watchdog node-pty; do
    (cd "$cs/lib/vscode/node_modules/$mod" && node "$gyp" rebuild --nodedir=$nodedir --loglevel=error >/dev/null)
  done
  # What code-server's postinstall.sh would do.
  (cd "$cs/lib/vscode" && rm -rf node_modules.asar && ln -s node_modules node_modules.asar)
  (cd "$cs/lib/vscode/bin/remote-cli" && ln -sf code-linux.sh code-server)
  (cd "$cs/lib/vscode/bin/helpers" && ln -sf browser-linux.sh browser.sh)
  rgdir="$cs/lib/vscode/node_modules/@vscode/ripgrep/bin"
  mkdir -p "$rgdir" && ln -sf "$(command -v rg)" "$rgdir/rg"
  (cd "$cs/lib/vscode/extensions" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
  rm -rf "$dest"
  mv "$stage" "$dest"
  trap - EXIT
  touch "$dest/.built"
fi
"$dest/node_modules/.bin/code-server" --version >/dev/null

# --- Playwright for Python ---------------------------------------------------------------
# Only the extra's own requirements (not `-e .[vscode-e2e]`, which would also re-resolve
# llama-cpp-python, a source build).
[ -x "$PY" ] || { echo "install.sh: no venv at $PY (run make venv first)" >&2; exit 1; }
reqs=$("$PY" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["vscode-e2e"]))' "$repo/pyproject.toml")
# An exact pin that is already installed is checked locally, without the index.
"$PY" -m pip install -q --disable-pip-version-check $reqs

echo "install.sh: real-VS Code prerequisites ready in $(( $(date +%s) - t0 )) s: code-server $dest, chromium /usr/lib/chromium/chromium"
