#!/usr/bin/env bash
# Build, test and package the VS Code extension: `bash editors/vscode/ci.sh`.
# The real-server tests start $HELIOS_BIN (default ../../.venv/bin/helios) and fail,
# never skip, when it is missing. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

npm ci --ignore-scripts --no-audit --no-fund
npm test
npm run package

vsix="helios-vscode-$(node -p 'require("./package.json").version').vsix"
test -s "$vsix"
echo "built $vsix"
