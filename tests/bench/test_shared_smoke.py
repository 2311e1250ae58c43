"""A smoke run of `python -m bench.shared --only memory`, so the sharing benchmark cannot rot.

It checks what the scenario must show whatever the machine's speed: with sharing, one
process maps the model and every window is a client of it; without, each maps its own.
Memory figures are only checked to be present: sizes belong to the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_memory_scenario_shares_one_model(tmp_path: Path, embedded_model) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.shared", "--only", "memory",
                           "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "shared.json").read_text())
    mem = result["memory"]
    shared, alone = mem["shared"], mem["one-process"]
    assert shared["errors"] == alone["errors"] == 0
    assert [w["process"] for w in shared["work"]] == ["lsp-1", "lsp-2", "lsp-3", "serve"]
    # 3 windows + serve + the engine; only the engine maps the model.
    assert shared["helios_processes"] == 5 and shared["mapping_model"] == 1
    assert [p["command"] for p in shared["processes"] if p["maps_model"]] == [
        "helios engine-daemon"]
    (engine,) = shared["status"]
    assert engine["running"] and engine["state"] == "ready"
    assert sorted(c["command"].split()[1] for c in engine["clients"]) == [
        "lsp", "lsp", "lsp", "serve"]
    assert alone["helios_processes"] == alone["mapping_model"] == 4
    assert 0 < shared["pss_mib"] < alone["pss_mib"]  # one model in memory, not four
    assert "| shared | 5 | 1 |" in proc.stdout
    # Nothing it started is left running, the engine included.
    assert result["meta"]["left_running"] == {"memory-shared": [], "memory-one-process": []}
