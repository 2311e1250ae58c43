"""Three real Neovim windows, each with the plugin in editors/neovim/ starting its own
`helios lsp`: the embedded model is loaded once, and when the first window closes the
others keep getting completions from the same engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helios_lsp.engine.model_source import embedded_model_path
from tests.conftest import free_port
from tests.lsp.test_neovim import INIT, PLUGIN, ROOT, TIMEOUT, find_nvim
from tests.shared.conftest import alive, cmdline, engine_pids, mapping, wait_until

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


def test_three_neovim_windows_load_the_model_once(tmp_path: Path, isolated_env, runtime):
    nvim = find_nvim()
    model = embedded_model_path()
    if nvim is None or model is None:
        pytest.skip("needs nvim and the embedded model")
    source = tmp_path / "fib.py"
    source.write_text("def fibonacci(n):\n    \n\n\nprint(fibonacci(10))\n")
    windows = []
    for i in range(3):
        out = tmp_path / f"result-{i}.json"
        env = {
            **isolated_env, "HELIOS_SHARE": "true", "XDG_RUNTIME_DIR": str(runtime),
            "HELIOS_NVIM_PLUGIN": str(PLUGIN),
            "HELIOS_TEST_CMD": json.dumps(
                [sys.executable, "-m", "helios_lsp", "lsp", "--port", str(free_port())]),
            "HELIOS_TEST_FILE": str(source), "HELIOS_TEST_OUT": str(out),
            "HELIOS_TEST_HOLD": str(tmp_path / f"release-{i}"),
            "XDG_STATE_HOME": str(tmp_path / f"state-{i}"),
            "XDG_DATA_HOME": str(tmp_path / f"data-{i}"),
            "XDG_CONFIG_HOME": str(tmp_path / f"config-{i}"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")])),
        }
        proc = subprocess.Popen([nvim, "--headless", "--clean", "-u", str(INIT)], env=env,
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        windows.append((proc, out))
    try:
        for proc, out in windows:
            wait_until(lambda out=out, proc=proc: out.with_suffix(".json.ready").exists()
                       or proc.poll() is not None, "every window's first completion",
                       timeout=TIMEOUT)
            first = json.loads(out.with_suffix(".json.ready").read_text())
            assert first.get("error") is None and first["state"] == "ready", first
            assert first["inline"]["items"] and first["accepted_line"].strip()

        servers = [pid for proc, _ in windows for pid in _children(proc.pid)
                   if "lsp" in cmdline(pid)]
        assert len(servers) == 3
        [engine] = engine_pids(runtime)
        holders = [pid for pid in mapping(model) if pid in (*servers, engine)]
        assert holders == [engine], "one process holds the model: the shared engine"

        # The first window closes; the other two ask again.
        (tmp_path / "release-0").touch()
        assert windows[0][0].wait(60) == 0
        wait_until(lambda: not alive(servers[0]), "the first window's server to exit")
        time.sleep(0.5)
        for i in (1, 2):
            (tmp_path / f"release-{i}").touch()
        for proc, out in windows[1:]:
            assert proc.wait(TIMEOUT) == 0, proc.stderr.read().decode()[-2000:]
            result = json.loads(out.read_text())
            assert result.get("error") is None and result.get("again_error") is None, result
            assert isinstance(result["again"], dict) and result["again"]["items"], result
        assert engine_pids(runtime) == [engine], "the same engine served them all"
    finally:
        for proc, _ in windows:
            if proc.poll() is None:
                proc.kill()
