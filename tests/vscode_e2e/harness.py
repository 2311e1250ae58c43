"""A real VS Code (code-server) driven by Debian's Chromium through Playwright.

One code-server and one browser serve the whole suite. The extension is the built .vsix,
installed with `code-server --install-extension`; the Helios server is the real
`helios serve` (embedded model), started by the extension itself (auto-start).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.http.conftest import wait_for as http_wait_for
from tests.vscode_e2e import prereqs

EXTENSION_ID = "helios.helios-vscode"
STATUS_ITEM = f'[id="{EXTENSION_ID}"]'
GHOST = ".monaco-editor .ghost-text-decoration"

# Records every text the Helios status bar item and the notification toasts take, so a
# state that lasts less than a poll (e.g. "loading" during a 0.6 s model load) is seen.
RECORDER = """
(() => {
  const rec = { status: [], toasts: [] };
  window.__helios = rec;
  const look = () => {
    const item = document.getElementById('helios.helios-vscode');
    if (item) {
      const text = item.textContent.trim();
      if (rec.status[rec.status.length - 1] !== text) rec.status.push(text);
    }
    const messages = '.notification-toast .notification-list-item-message';
    for (const toast of document.querySelectorAll(messages)) {
      const text = toast.textContent.trim();
      if (text && !rec.toasts.includes(text)) rec.toasts.push(text);
    }
  };
  new MutationObserver(look)
    .observe(document, { subtree: true, childList: true, characterData: true });
})();
"""

FILES = {
    # The seed's example: the model completes the recursion.
    "fib.py": "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "app.js": "function add(a, b) {\n  return",
    # Ends inside an expression: Alt+\\ is pressed here without typing first.
    "other.py": "import math\n\n\ndef circle_area(radius):\n    return math.pi * ",
}

# Editor settings that keep other features from taking Tab or the typed characters.
USER_SETTINGS: dict[str, Any] = {
    "security.workspace.trust.enabled": False,
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "workbench.enableExperiments": False,
    "workbench.editor.enablePreview": False,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "extensions.ignoreRecommendations": True,
    "git.enabled": False,
    "files.autoSave": "off",
    "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
    "editor.suggestOnTriggerCharacters": False,
    "editor.wordBasedSuggestions": "off",
    "editor.parameterHints.enabled": False,
    "editor.autoClosingBrackets": "never",
    "editor.autoClosingQuotes": "never",
    "editor.inlineSuggest.enabled": True,
    "helios.temperature": 0,
    # A shared 2-core machine under load can take many seconds for one suggestion.
    "helios.timeoutMs": 60_000,
}


def wait_for(
    predicate: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.1
) -> Any:
    return http_wait_for(predicate, what, timeout, interval)


def pids_matching(*needles: str) -> list[int]:
    """Processes whose command line contains every needle (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmdline for n in needles):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class VSCode:
    """code-server + Chromium for the suite; the helpers the tests act through."""

    def __init__(self, root: Path):
        self.root = root
        self.workspace = root / "workspace"
        self.user_data = root / "user-data"
        self.extensions = root / "extensions"
        self.settings_file = self.user_data / "User" / "settings.json"
        self.port = free_port()
        self.helios_port = free_port()
        self.helios_url = f"http://127.0.0.1:{self.helios_port}"
        self.settings: dict[str, Any] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "code-server.log"
        self.install_output = ""
        self.timings: dict[str, float] = {}
        self._pw = None
        self.browser = None
        self.page = None

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        t0 = time.monotonic()
        for name, text in FILES.items():
            (self.workspace / name).parent.mkdir(parents=True, exist_ok=True)
            (self.workspace / name).write_text(text)
        # A workspace that tries to redirect the extension: machine-scoped settings must
        # ignore it (the suite only works if they do).
        (self.workspace / ".vscode").mkdir()
        (self.workspace / ".vscode" / "settings.json").write_text(
            json.dumps(
                {
                    "helios.serverUrl": "http://127.0.0.1:9",
                    "helios.serverCommand": "/bin/false",
                    "helios.autoStart": False,
                }
            )
        )
        self.write_settings(USER_SETTINGS)
        # Machine-scoped settings live in the remote's Machine settings (code-server ignores
        # them in the browser's user settings once the remote's are known).
        machine = self.user_data / "Machine" / "settings.json"
        machine.parent.mkdir(parents=True, exist_ok=True)
        machine.write_text(
            json.dumps(
                {
                    "helios.serverUrl": self.helios_url,
                    "helios.serverCommand": str(prereqs.helios_bin()),
                    "helios.autoStart": True,
                },
                indent=2,
            )
        )
        env = self._env()
        binary = str(prereqs.code_server_bin())
        common = ["--extensions-dir", str(self.extensions), "--user-data-dir", str(self.user_data)]
        install = subprocess.run(
            [binary, "--install-extension", str(prereqs.vsix_path()), *common],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        self.install_output = install.stdout + install.stderr
        assert install.returncode == 0, f"--install-extension failed:\n{self.install_output}"
        config = self.root / "config.yaml"
        config.write_text("auth: none\ncert: false\n")
        self.proc = subprocess.Popen(
            [
                binary,
                "--config",
                str(config),
                "--auth",
                "none",
                "--bind-addr",
                f"127.0.0.1:{self.port}",
                *common,
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                "--disable-getting-started-override",
                "--ignore-last-opened",
            ],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        wait_for(
            lambda: (
                "HTTP server listening" in self.log_path.read_text(errors="replace")
                or self.proc.poll() is not None
            ),
            "code-server to listen",
            timeout=60,
        )
        assert self.proc.poll() is None, f"code-server exited:\n{self.log_path.read_text()}"

        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(
            executable_path=str(prereqs.CHROMIUM), args=["--no-sandbox"]
        )
        self.open_window()
        self.timings["start"] = time.monotonic() - t0

    def _env(self) -> dict[str, str]:
        # No HELIOS_* from the caller; an empty Ollama store: the embedded model is used.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
        env["OLLAMA_MODELS"] = str(self.root / "ollama-empty")
        env["XDG_CONFIG_HOME"] = str(self.root / "xdg-config")
        env["XDG_DATA_HOME"] = str(self.root / "xdg-data")
        env["HELIOS_SHARE"] = "false"  # the extension's server holds its model, as it did
        return env

    def open_window(self) -> None:
        """A browser window on the workspace (VS Code's workbench, no file open)."""
        self.page = self.browser.new_page(viewport={"width": 1400, "height": 900})
        self.page.add_init_script(RECORDER)
        self.page.goto(f"http://127.0.0.1:{self.port}/?folder={self.workspace}")
        self.page.wait_for_selector(".explorer-folders-view .monaco-list-row", timeout=60_000)

    def close_window(self) -> None:
        """Closes the window as a user does (unload handlers run)."""
        if self.page is not None:
            self.page.close(run_before_unload=True)
            self.page = None

    def stop_code_server(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def close(self) -> None:
        try:
            if self.browser is not None:
                self.browser.close()
            if self._pw is not None:
                self._pw.stop()
        finally:
            self.browser = self._pw = self.page = None
            self.stop_code_server()
            # Anything left in code-server's process group (it starts its children there).
            if self.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            for pid in self.server_pids():
                os.kill(pid, signal.SIGKILL)

    # ---- settings ----------------------------------------------------------------------

    def write_settings(self, values: dict[str, Any]) -> None:
        """Changes user settings (None removes a key). With a window open this goes through
        VS Code's own settings.json editor, as a user would: code-server does not notice the
        file changing under it."""
        self.settings.update(values)
        for key in [k for k, v in self.settings.items() if v is None]:
            del self.settings[key]
        text = json.dumps(self.settings, indent=2)
        if self.page is None:
            self.settings_file.parent.mkdir(parents=True, exist_ok=True)
            self.settings_file.write_text(text)
            return
        self.run_command("Preferences: Open User Settings (JSON)")
        self.page.wait_for_selector(
            '.tab.active[data-resource-name="settings.json"]', timeout=15_000
        )
        self.page.locator(".editor-instance .monaco-editor .view-lines").first.click()
        self.press("Control+a", "Delete")
        self.page.keyboard.insert_text(text)
        self.press("Control+s")
        wait_for(
            lambda: json.loads(self.settings_file.read_text() or "{}") == self.settings,
            "settings.json saved",
        )
        self.run_command("View: Close Editor")

    # ---- the editor --------------------------------------------------------------------

    def open_file(self, name: str) -> None:
        page = self.page
        page.locator(".explorer-folders-view .monaco-list-row", has_text=name).first.dblclick()
        page.wait_for_selector(f'.tab.active[data-resource-name="{name}"]', timeout=15_000)
        page.locator(".editor-instance .monaco-editor .view-lines").first.click()

    def press(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)

    def type(self, text: str, delay: float = 20) -> None:
        self.page.keyboard.type(text, delay=delay)

    def ghost_text(self) -> str:
        """The ghost text shown now ('' when none), inline part and following lines."""
        return self.page.evaluate(
            """() => {
              const inline = [...document.querySelectorAll('.monaco-editor .ghost-text-decoration')]
                .map((e) => e.textContent).join('');
              const lines = [...document.querySelectorAll('.monaco-editor .ghost-text .view-line')]
                .map((e) => e.textContent);
              // Monaco renders spaces as no-break spaces.
              return [inline, ...lines].join('\\n').replace(/\\u00a0/g, ' ').replace(/\\n+$/, '');
            }"""
        )

    def wait_ghost(self, timeout: float = 90.0) -> str:
        return wait_for(
            lambda: self.ghost_text().strip() and self.ghost_text(), "ghost text", timeout
        )

    def editor_text(self) -> str:
        return self.page.evaluate(
            "() => [...document.querySelectorAll('.editor-instance .monaco-editor .view-line')]"
            ".map((e) => e.textContent).join('\\n').replace(/\\u00a0/g, ' ')"
        )

    # ---- the status bar, notifications, commands ---------------------------------------

    def status_text(self) -> str:
        item = self.page.locator(STATUS_ITEM)
        return item.inner_text().strip() if item.count() else ""

    def status_history(self) -> list[str]:
        return self.page.evaluate("() => window.__helios.status")

    def toasts_seen(self) -> list[str]:
        return self.page.evaluate("() => window.__helios.toasts")

    def visible_toasts(self) -> list[str]:
        return [
            t.inner_text()
            for t in self.page.locator(".notification-toast .notification-list-item-message").all()
        ]

    def clear_notifications(self) -> None:
        self.run_command("Notifications: Clear All Notifications")
        self.page.evaluate("() => { window.__helios.toasts.length = 0; }")

    def wait_status(self, pattern: Callable[[str], bool], what: str, timeout: float = 60.0) -> str:
        return wait_for(
            lambda: (t := self.status_text()) and pattern(t) and t, f"status bar: {what}", timeout
        )

    def run_command(self, title: str) -> None:
        """Runs a command from the Command Palette by its title."""
        page = self.page
        page.keyboard.press("F1")
        box = page.locator(".quick-input-widget input")
        box.wait_for(state="visible", timeout=10_000)
        box.fill(f">{title}")
        exact = page.locator(".quick-input-list .monaco-list-row").filter(
            has=page.locator(".label-name", has_text=re.compile(f"^{re.escape(title)}$"))
        )
        exact.first.click(timeout=10_000)

    def quick_pick_rows(self) -> list[str]:
        rows = self.page.locator(".quick-input-widget .quick-input-list .monaco-list-row")
        rows.first.wait_for(timeout=10_000)
        return [r.inner_text() for r in rows.all()]

    # ---- the Helios server -------------------------------------------------------------

    def server_pids(self) -> list[int]:
        return [
            p
            for p in pids_matching("serve", "--port", str(self.helios_port), "--parent-pid")
            if alive(p)
        ]

    def helios_status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.helios_url}/status", timeout=5) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def engine_stats(self) -> dict[str, int]:
        status = wait_for(self.helios_status, "GET /status", timeout=10)
        return status["engine"]["stats"]

    # ---- logs and artifacts ------------------------------------------------------------

    def _logs(self, pattern: str) -> str:
        files = sorted((self.user_data / "logs").glob(pattern), key=lambda p: p.stat().st_mtime)
        return "\n".join(f.read_text(errors="replace") for f in files)

    def exthost_log(self) -> str:
        return self._logs("*/exthost*/remoteexthost.log")

    def helios_log(self) -> str:
        """The extension's own output channel (Helios: Show Log), as VS Code writes it."""
        return self._logs("*/exthost*/output_logging_*/*-Helios.log")

    def wait_log(self, pattern: str, count: int = 1, timeout: float = 15.0) -> None:
        """Waits until the Helios log has a line matching `pattern` (at least `count`)."""
        regex = re.compile(pattern, re.MULTILINE)
        wait_for(
            lambda: len(regex.findall(self.helios_log())) >= count,
            f"{pattern!r} in the Helios log",
            timeout,
        )

    def exthost_pids(self) -> list[int]:
        return [
            p
            for p in pids_matching(
                "--type=extensionHost", str(prereqs.code_server_bin().parents[2])
            )
            if alive(p)
        ]

    def save_artifacts(self, dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        saved = []
        if self.page is not None:
            try:
                self.page.screenshot(path=str(dest / "screenshot.png"))
                saved.append(dest / "screenshot.png")
                (dest / "recorded.json").write_text(
                    json.dumps(
                        {
                            "status": self.status_history(),
                            "toasts": self.toasts_seen(),
                            "server": self.helios_status(),
                        },
                        indent=2,
                    )
                )
            except Exception as exc:  # a dead page must not hide the test's own failure
                (dest / "screenshot-failed.txt").write_text(repr(exc))
        logs = self.user_data / "logs"
        if logs.exists():
            shutil.copytree(logs, dest / "logs", dirs_exist_ok=True)
            saved.append(dest / "logs")
        if self.log_path.exists():
            shutil.copy(self.log_path, dest / "code-server.log")
        return saved
