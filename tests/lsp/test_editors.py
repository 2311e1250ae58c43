"""The editor files: the Helix snippet adds Helios to every documented language without
dropping that language's default servers, with settings the server accepts."""

from __future__ import annotations

import tomllib
from pathlib import Path

from helios_lsp.engine import SUPPORTED_IDS
from helios_lsp.lsp.config import parse_config
from helios_lsp.settings import Settings

EDITORS = Path(__file__).resolve().parents[2] / "editors"

# Helix 25.07 defaults (languages.toml of the release), per documented language.
HELIX_DEFAULTS = {
    "python": ["ty", "ruff", "jedi", "pylsp"],
    "javascript": ["typescript-language-server"],
    "typescript": ["typescript-language-server"],
    "java": ["jdtls"],
    "cpp": ["clangd"],
    "c": ["clangd"],
    "go": ["gopls", "golangci-lint-lsp"],
    "rust": ["rust-analyzer"],
    "html": ["vscode-html-language-server", "superhtml"],
    "css": ["vscode-css-language-server"],
    "json": ["vscode-json-language-server"],
}


def test_helix_snippet():
    config = tomllib.loads((EDITORS / "helix" / "languages.toml").read_text())
    server = config["language-server"]["helios"]
    assert (server["command"], server["args"]) == ("helios", ["lsp"])
    _, problems = parse_config(server["config"], Settings())
    assert problems == []

    languages = {lang["name"]: lang["language-servers"] for lang in config["language"]}
    assert set(languages) == set(SUPPORTED_IDS) == set(HELIX_DEFAULTS)
    for name, servers in languages.items():
        *usual, helios = servers
        assert usual == HELIX_DEFAULTS[name], name
        assert helios == {"name": "helios", "only-features": ["completion"]}


def test_neovim_plugin_files():
    plugin = EDITORS / "neovim"
    assert (plugin / "lsp" / "helios.lua").is_file()
    assert (plugin / "lua" / "helios" / "init.lua").is_file()
    lsp_config = (plugin / "lsp" / "helios.lua").read_text()
    for language in SUPPORTED_IDS:
        assert f"'{language}'" in lsp_config
