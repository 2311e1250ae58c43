"""Processes sharing one engine: a private runtime directory per test, helpers to find the
shared engine and who maps the model."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.http.conftest import wait_for
from tests.lsp.conftest import lsp  # noqa: F401 (the fixture, for these tests too)

HELIOS = [sys.executable, "-m", "helios_lsp"]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Path]:
    """A private XDG_RUNTIME_DIR (short: unix socket paths are limited to 108 bytes); every
    shared engine started in it is stopped at the end."""
    path = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))
    path.chmod(0o700)
    yield path
    for pid in engine_pids(path):
        with_signal(pid, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def model(tmp_path: Path, tiny_model: Path) -> Path:
    """The tiny model under a path of this test's own, so /proc/*/maps tells who holds it."""
    copy = tmp_path / "shared-tiny.gguf"
    shutil.copyfile(tiny_model, copy)
    return copy


def shared_env(isolated_env: dict[str, str], runtime: Path, model: Path,
               **helios: str) -> dict[str, str]:
    env = {**isolated_env, "XDG_RUNTIME_DIR": str(runtime), "HELIOS_SHARE": "true",
           "HELIOS_MODEL": str(model), "HELIOS_SHARE_IDLE": "30", "HELIOS_N_THREADS": "1"}
    env.update({f"HELIOS_{k.upper()}": v for k, v in helios.items()})
    return env


def with_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def engine_pids(runtime: Path) -> list[int]:
    """Shared engines started for this runtime directory (found by their environment)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not alive(int(entry)):
            continue
        if "engine-daemon" not in cmdline(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if f"XDG_RUNTIME_DIR={runtime}".encode() in env:
            found.append(int(entry))
    return found


def mapping(path: Path) -> list[int]:
    """Every process that has `path` mapped into memory."""
    holders = []
    needle = str(path)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps") as f:
                if any(line.rstrip().endswith(needle) for line in f):
                    holders.append(int(entry))
        except OSError:
            continue
    return holders


def wait_until(probe: Any, what: str, timeout: float = 60.0) -> Any:
    return wait_for(probe, what, timeout)


def helios_status(env: dict[str, str]) -> list[dict[str, Any]]:
    out = subprocess.run([*HELIOS, "status", "--json"], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)
