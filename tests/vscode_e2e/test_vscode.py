"""The VS Code extension in a REAL VS Code (code-server 4.100.3 = VS Code 1.100.3).

The tests run in file order on one code-server window, as a user's session would: install,
open a JavaScript file (activation, auto-start), then Python, ghost text, Tab, Alt+\\,
settings, commands, the server stopped and back, and finally the window and code-server
closed. Each README promise checked here is named in the test's docstring.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.vscode_e2e import prereqs
from tests.vscode_e2e.harness import EXTENSION_ID, FILES, VSCode, alive, wait_for

pytestmark = pytest.mark.slow

READY = re.compile(r"^Helios: SmolLM2")


def is_ready(text: str) -> bool:
    return bool(READY.match(text))


def test_vsix_installs_with_install_extension(vscode: VSCode) -> None:
    """README: "code --install-extension helios-vscode-0.1.0.vsix"."""
    assert (
        f"Extension '{prereqs.vsix_path().name}' was successfully installed."
        in vscode.install_output
    )
    listed = subprocess.run(
        [
            str(prereqs.code_server_bin()),
            "--list-extensions",
            "--show-versions",
            "--extensions-dir",
            str(vscode.extensions),
            "--user-data-dir",
            str(vscode.user_data),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert f"{EXTENSION_ID}@0.1.0" in listed.split()


def test_activates_on_javascript_and_starts_the_server(vscode: VSCode) -> None:
    """Activation on a JavaScript file; auto-start of `helios serve` with progress; status bar
    from starting/loading to ready with the model name. The workspace's .vscode/settings.json
    sets another serverUrl, serverCommand and autoStart: README says they are ignored."""
    assert vscode.server_pids() == [], "nothing serves the URL before the extension starts it"
    vscode.open_file("app.js")
    wait_for(
        lambda: (
            f"{EXTENSION_ID}, startup: false, activationEvent: 'onLanguage:javascript'"
            in vscode.exthost_log()
        ),
        "activation on onLanguage:javascript",
    )
    vscode.wait_status(is_ready, "ready with the model name")
    [pid] = vscode.server_pids()
    args = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    parent = int(args[args.index("--parent-pid") + 1])
    assert parent in vscode.exthost_pids(), "started by the extension host, which it watches"
    history = vscode.status_history()
    assert any(t in ("Helios: starting", "Helios: loading") for t in history), history
    assert is_ready(history[-1]), history
    assert any("starting the server" in t for t in vscode.toasts_seen()), vscode.toasts_seen()
    command = f"$ {prereqs.helios_bin()} serve --host 127.0.0.1 --port {vscode.helios_port}"
    assert command in vscode.helios_log()


def test_ghost_text_in_javascript(vscode: VSCode) -> None:
    """Ghost text in JavaScript after a pause in typing."""
    before = vscode.engine_stats()["requests"]
    vscode.press("Control+End")
    vscode.type(" ")
    ghost = vscode.wait_ghost()
    assert ghost.strip(), ghost
    assert vscode.engine_stats()["requests"] > before
    vscode.press("Escape")


def test_python_ghost_text_tab_accepts_into_the_saved_file(vscode: VSCode) -> None:
    """Ghost text in Python; Tab accepts it; Ctrl+S writes it to disk."""
    vscode.open_file("fib.py")
    vscode.press("Control+End")
    vscode.type(" ")
    ghost = vscode.wait_ghost()
    # What the model says is the engine's business (it changes with it); that the text
    # shown is what Tab writes is the extension's and VS Code's.
    assert ghost.strip(), ghost
    vscode.press("Tab")
    wait_for(lambda: not vscode.ghost_text(), "the ghost text to be taken in")
    vscode.press("Control+s")
    path = vscode.workspace / "fib.py"
    wait_for(lambda: path.read_text() != FILES["fib.py"], "the file saved")
    assert path.read_text() == FILES["fib.py"] + " " + ghost


def test_typing_on_shows_ghost_text_again(vscode: VSCode) -> None:
    """A new line typed after the accepted suggestion gets its own ghost text (a new request)."""
    before = vscode.engine_stats()["requests"]
    vscode.press("Control+End", "Enter", "Enter")
    vscode.type("print(fibonacci(")
    ghost = vscode.wait_ghost()
    assert ghost.strip(), ghost
    assert vscode.engine_stats()["requests"] > before


def test_alt_backslash_asks_at_once(vscode: VSCode) -> None:
    """README: "Alt+\\ (Trigger Inline Suggestion) asks at once" (issue 13: it did nothing)."""
    vscode.open_file("other.py")
    # Moving the cursor alone asks nothing: only the key may cause the request below.
    vscode.press("Control+End")
    before = vscode.engine_stats()["requests"]
    time.sleep(1.5)
    assert vscode.engine_stats()["requests"] == before, "no request without the key"
    assert not vscode.ghost_text()
    vscode.press("Alt+Backslash")
    ghost = vscode.wait_ghost()
    assert ghost.strip(), ghost
    assert vscode.engine_stats()["requests"] == before + 1
    vscode.press("Escape")


def new_line(vscode: VSCode, text: str) -> None:
    """Types `text` on a new line at the end of the active file (Escape first: no ghost text)."""
    vscode.press("Escape", "Control+End", "Enter")
    vscode.type(text)


def test_settings_take_effect_without_a_reload(vscode: VSCode) -> None:
    """helios.enabledLanguages and helios.debounceMs changed in settings.json apply at once."""
    vscode.open_file("fib.py")
    vscode.write_settings({"helios.enabledLanguages": ["javascript"]})
    vscode.wait_log(r"settings changed: .*\benabledLanguages\b")
    before = vscode.engine_stats()["requests"]
    new_line(vscode, "total = fibonacci(")
    time.sleep(2.0)
    assert vscode.engine_stats()["requests"] == before, "python is not enabled: nothing is asked"
    assert not vscode.ghost_text()

    vscode.write_settings({"helios.enabledLanguages": None, "helios.debounceMs": 0})
    vscode.wait_log(r"settings changed: .*\benabledLanguages, debounceMs\b")
    vscode.type("3")
    assert vscode.wait_ghost().strip()
    assert vscode.engine_stats()["requests"] == before + 1


def test_cancelled_requests_raise_no_error(vscode: VSCode) -> None:
    """README: "A newer keystroke cancels the request in flight" and "Nothing pops up while
    you type": a burst with debounce 0 cancels requests on the server, no notification shows."""
    vscode.clear_notifications()
    history_before = len(vscode.status_history())
    stats = vscode.engine_stats()
    # Slower than VS Code's own debounce of inline completion requests, faster than the model.
    vscode.press("Escape", "Control+End", "Enter")
    vscode.type("answer = fibonacci(10) + fibonacci(", delay=150)
    assert vscode.wait_ghost().strip()
    after = vscode.engine_stats()
    assert after["requests"] > stats["requests"] + 1, (stats, after)
    stopped = sum(after[k] - stats[k] for k in ("cancelled", "dropped", "superseded"))
    assert stopped >= 1, f"some requests were cancelled: {stats} -> {after}"
    assert vscode.toasts_seen() == [], vscode.toasts_seen()
    assert vscode.visible_toasts() == []
    assert all(is_ready(t) for t in vscode.status_history()[history_before:]), (
        vscode.status_history()
    )
    assert "completion failed" not in vscode.helios_log()
    assert vscode.page.locator(".monaco-dialog-box").count() == 0, "no modal dialog"
    vscode.write_settings({"helios.debounceMs": None})
    vscode.wait_log(r"settings changed: debounceMs$")


def test_show_status_command_and_status_bar_click(vscode: VSCode) -> None:
    """README: Show Status (model, version, uptime) and actions; clicking the status bar item."""
    vscode.press("Escape")
    vscode.run_command("Helios: Show Status")
    rows = vscode.quick_pick_rows()
    assert is_ready(rows[0].strip()), rows
    assert re.search(r"model SmolLM2.* · version \S+ · up \d+", rows[0]), rows
    for action in ("Restart Server", "Turn Completions Off", "Show Log", "Settings", "Set API Key"):
        assert any(action in r for r in rows), (action, rows)
    vscode.press("Escape")
    vscode.page.locator('[id="helios.helios-vscode"]').click()
    assert is_ready(vscode.quick_pick_rows()[0].strip())
    vscode.press("Escape")
    # Start Server with a server already answering: said so, nothing started.
    vscode.run_command("Helios: Start Server")
    wait_for(
        lambda: any("already running" in t for t in vscode.toasts_seen()),
        "the already-running notice",
    )
    assert len(vscode.server_pids()) == 1


def test_restart_command_goes_through_loading(vscode: VSCode) -> None:
    """README: Restart Server (POST /restart); "Helios: loading" while the model reloads."""
    loads = vscode.engine_stats()["loads"]
    mark = len(vscode.status_history())
    vscode.run_command("Helios: Restart Server")
    wait_for(
        lambda: any("Server restart initiated" in t for t in vscode.toasts_seen()),
        "the restart notice",
    )
    wait_for(
        lambda: (
            (s := vscode.helios_status())
            and s["engine"]["stats"]["loads"] == loads + 1
            and s["model_loaded"]
        ),
        "the model reloaded",
    )
    vscode.wait_status(is_ready, "ready again")
    seen = vscode.status_history()[mark:]
    assert "Helios: loading" in seen, seen
    assert is_ready(seen[-1]), seen


def test_toggle_completions_and_show_log(vscode: VSCode) -> None:
    """README: Toggle Completions ("Helios: off", nothing asked) and Show Log."""
    vscode.open_file("fib.py")
    vscode.run_command("Helios: Toggle Completions")
    vscode.wait_status(lambda t: t == "Helios: off", "off")
    before = vscode.engine_stats()["requests"]
    new_line(vscode, "n = fibonacci(")
    time.sleep(1.5)
    assert vscode.engine_stats()["requests"] == before
    vscode.run_command("Helios: Toggle Completions")
    vscode.wait_status(is_ready, "on again")

    vscode.run_command("Helios: Show Log")
    output = vscode.page.locator(".panel .monaco-editor .view-lines")
    wait_for(
        lambda: "status: loading -> ready" in output.first.inner_text().replace("\u00a0", " "),
        "the Helios log in the Output panel",
    )
    vscode.run_command("View: Hide Panel")


def test_set_api_key_command(vscode: VSCode) -> None:
    """Issue 9 item 8: "Helios: Set API Key" asks with a password box, keeps the key in
    SecretStorage and never logs it; an empty answer removes it."""
    key = "e2e-secret-key-4242"
    vscode.run_command("Helios: Set API Key")
    box = vscode.page.locator(".quick-input-widget input[type=password]")
    box.wait_for(state="visible", timeout=10_000)
    box.fill(key)
    vscode.press("Enter")
    wait_for(lambda: any("API key saved" in t for t in vscode.toasts_seen()), "the saved notice")
    wait_for(lambda: "an API key is set" in vscode.helios_log(), "the log line")
    vscode.run_command("Helios: Set API Key")
    box.wait_for(state="visible", timeout=10_000)
    box.fill("")
    vscode.press("Enter")
    wait_for(
        lambda: any("API key removed" in t for t in vscode.toasts_seen()), "the removed notice"
    )
    logs = vscode.helios_log() + vscode.exthost_log()
    assert key not in logs


def test_server_stopped_then_started_from_the_notice(vscode: VSCode) -> None:
    """Status bar: ready -> "Helios: not running" when the server dies -> back; README: "a
    refused connection shows 'Helios server not running' once, with a Start Server action"."""
    vscode.clear_notifications()
    [pid] = vscode.server_pids()
    mark = len(vscode.status_history())
    os.kill(pid, signal.SIGKILL)
    vscode.wait_status(lambda t: t == "Helios: not running", "not running")
    toast = vscode.page.locator(".notification-toast", has_text="Helios server not running")
    toast.wait_for(timeout=15_000)
    toast.get_by_role("button", name="Start Server").click()
    vscode.wait_status(is_ready, "ready again")
    [new_pid] = vscode.server_pids()
    assert new_pid != pid
    seen = vscode.status_history()[mark:]
    assert seen[0] == "Helios: not running" and is_ready(seen[-1]), seen
    assert any(t in ("Helios: starting", "Helios: loading") for t in seen), seen
    assert sum("Helios server not running" in t for t in vscode.toasts_seen()) == 1, (
        vscode.toasts_seen()
    )


def test_window_close_stops_the_server_and_python_activates_anew(vscode: VSCode) -> None:
    """README: "A server started by the extension is stopped when the window closes"; then a
    new window activates on a Python file and starts it again."""
    # No editor to restore: the new window's first file decides its activation event.
    vscode.run_command("File: Save All Files")
    vscode.run_command("View: Close All Editors")
    [pid] = vscode.server_pids()
    vscode.close_window()
    wait_for(lambda: not alive(pid), "helios serve to stop with the window", timeout=20)
    vscode.open_window()
    vscode.open_file("other.py")
    wait_for(
        lambda: (
            f"{EXTENSION_ID}, startup: false, activationEvent: 'onLanguage:python'"
            in vscode.exthost_log()
        ),
        "activation on onLanguage:python",
    )
    vscode.wait_status(is_ready, "ready in the new window")
    assert len(vscode.server_pids()) == 1


def test_a_server_started_by_hand_is_left_alone(vscode: VSCode) -> None:
    """README: "a server you started yourself is left alone" (used, not started, not stopped)."""
    vscode.run_command("View: Close All Editors")
    [extension_server] = vscode.server_pids()
    vscode.close_window()
    wait_for(lambda: not alive(extension_server), "the extension's server to stop", timeout=20)
    wait_for(lambda: not vscode.exthost_pids(), "the extension host to go", timeout=20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    env["OLLAMA_MODELS"] = str(vscode.root / "ollama-empty")
    env["HELIOS_SHARE"] = "false"
    mine = subprocess.Popen(
        [
            str(prereqs.helios_bin()),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(vscode.helios_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_for(vscode.helios_status, "my server to answer")
        starts = vscode.helios_log().count("starting helios serve")
        vscode.open_window()
        vscode.open_file("other.py")
        vscode.wait_status(is_ready, "ready on my server")
        assert vscode.server_pids() == [], "the extension started nothing"
        assert vscode.helios_log().count("starting helios serve") == starts
        vscode.run_command("View: Close All Editors")
        vscode.close_window()
        wait_for(lambda: not vscode.exthost_pids(), "the extension host to go", timeout=20)
        assert mine.poll() is None, "my server still runs"
    finally:
        mine.terminate()
        mine.wait(timeout=30)
    vscode.open_window()
    vscode.open_file("other.py")
    vscode.wait_status(is_ready, "ready on a server the extension started again")
    wait_for(lambda: len(vscode.server_pids()) == 1, "one server started by the extension")


def test_server_stops_itself_when_the_extension_host_dies(vscode: VSCode) -> None:
    """README: the server "stops itself if the extension host dies without stopping it
    (`--parent-pid`)"; a restarted extension host starts a new one."""
    [pid] = vscode.server_pids()
    args = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    host = int(args[args.index("--parent-pid") + 1])
    os.kill(host, signal.SIGKILL)  # no deactivate: only the server itself can notice
    wait_for(lambda: not alive(pid), "helios serve to stop itself", timeout=20)
    # VS Code restarts a crashed extension host; the extension finds no server at its next
    # health check and starts one again.
    wait_for(lambda: len(vscode.server_pids()) == 1, "a new server", timeout=60)
    vscode.wait_status(is_ready, "ready with a new extension host", timeout=30)


def test_code_server_exit_stops_the_server_and_uninstall(vscode: VSCode) -> None:
    """The server stops with code-server; README: "code --uninstall-extension"."""
    [pid] = vscode.server_pids()
    vscode.stop_code_server()
    wait_for(lambda: not alive(pid), "helios serve to stop with code-server", timeout=20)
    common = ["--extensions-dir", str(vscode.extensions), "--user-data-dir", str(vscode.user_data)]
    binary = str(prereqs.code_server_bin())
    out = subprocess.run(
        [binary, "--uninstall-extension", EXTENSION_ID, *common],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"Extension '{EXTENSION_ID}' was successfully uninstalled!" in out.stdout + out.stderr
    listed = subprocess.run(
        [binary, "--list-extensions", *common], capture_output=True, text=True, timeout=60
    ).stdout
    assert EXTENSION_ID not in listed
