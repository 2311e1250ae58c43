"""What the real-VS Code tests need, and why they cannot run when something is missing.

`python tests/vscode_e2e/prereqs.py` prints the reasons (one line) and exits 1 when a
prerequisite is missing, 0 otherwise; the Makefile prints them as a loud SKIPPED line.
`bash editors/vscode/e2e/install.sh` installs them (code-server is built into a cache
outside the clone, keyed by version).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "editors" / "vscode"
CODE_SERVER_VERSION = (EXTENSION_DIR / "e2e" / "code-server-version").read_text().strip()
CHROMIUM = Path(os.environ.get("HELIOS_CHROMIUM", "/usr/lib/chromium/chromium"))
INSTALL = "bash editors/vscode/e2e/install.sh"


def cache_dir() -> Path:
    return Path(os.environ.get("HELIOS_CACHE", Path.home() / ".cache" / "helios"))


def code_server_bin() -> Path:
    return (
        cache_dir() / f"code-server-{CODE_SERVER_VERSION}" / "node_modules" / ".bin" / "code-server"
    )


def vsix_path() -> Path:
    """The .vsix `make vscode` builds (HELIOS_VSIX: another build, e.g. to show a test fails)."""
    if os.environ.get("HELIOS_VSIX"):
        return Path(os.environ["HELIOS_VSIX"]).resolve()
    version = json.loads((EXTENSION_DIR / "package.json").read_text())["version"]
    return EXTENSION_DIR / f"helios-vscode-{version}.vsix"


def helios_bin() -> Path:
    return Path(sys.executable).parent / "helios"


def missing() -> list[str]:
    """Why the suite cannot run here (empty when it can)."""
    reasons = []
    where = code_server_bin().parents[2]
    if not (where / ".built").exists():
        reasons.append(f"code-server {CODE_SERVER_VERSION} not built in {where} (run {INSTALL})")
    if not os.access(CHROMIUM, os.X_OK):
        reasons.append(f"Chromium not at {CHROMIUM} (run {INSTALL}, or apt-get install chromium)")
    if shutil.which("node") is None:
        reasons.append("Node.js not found")
    if importlib.util.find_spec("playwright") is None:
        reasons.append(f"Playwright for Python not in this venv (run {INSTALL})")
    if not vsix_path().is_file():
        reasons.append(f"{vsix_path()} not built (run make vscode)")
    if not helios_bin().is_file():
        reasons.append(f"{helios_bin()} not found (run make venv)")
    return reasons


if __name__ == "__main__":
    why = missing()
    if why:
        print("; ".join(why))
        sys.exit(1)
