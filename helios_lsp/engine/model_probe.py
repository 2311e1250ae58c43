"""A model file is loaded in a short-lived child process before Helios loads it.

Some malformed GGUF files make llama.cpp abort the whole process (a `GGML_ASSERT`, e.g. a
`block_count` of 0): header checks will always trail its asserts, and an abort cannot be
caught in Python. So a file Helios has not loaded before is first loaded, and one token
evaluated, by `python -m helios_lsp.engine.probe_child`; if that child dies, the file is
refused and the server keeps running. The verdict is cached by path, size, mtime and
llama.cpp version (a swapped or edited file is probed again), in a file only this user
can write, so the probe costs one extra load per model file, once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from helios_lsp.engine.errors import ModelError

log = logging.getLogger(__name__)

CACHE_FILE = "model-probes.json"
_MAX_ENTRIES = 256
_STDERR_TAIL = 2000  # characters of the child's stderr kept for the log


class ModelRefusedError(ModelError):
    """llama.cpp crashed or failed on the file in the test load: it is never loaded here."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str  # for users: no path, no llama.cpp output


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "helios"


def _llama_version() -> str:
    try:
        from importlib.metadata import version

        return version("llama_cpp_python")
    except Exception:  # not installed as a distribution: still a stable key
        return "unknown"


def _key(path: Path) -> str:
    st = path.stat()
    return "\0".join([str(path.resolve()), str(st.st_size), str(st.st_mtime_ns),
                      _llama_version()])


def _private_dir(directory: Path) -> bool:
    """Whether only this user can write `directory` (else its verdicts are not trusted)."""
    try:
        st = directory.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


class VerdictCache:
    """Verdicts on disk. A lost update between two processes only costs a second probe."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory / CACHE_FILE

    def _read(self) -> dict[str, dict[str, object]]:
        if not _private_dir(self.directory):
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Verdict | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("ok"), bool):
            return None
        return Verdict(entry["ok"], str(entry.get("reason", "")))

    def put(self, key: str, verdict: Verdict) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not _private_dir(self.directory):
                log.warning("not caching model probe verdicts: the cache folder is writable "
                            "by other users")
                return
            entries = self._read()
            entries[key] = {"ok": verdict.ok, "reason": verdict.reason, "at": time.time()}
            # Forget files that are gone, then the oldest, so the file stays small.
            entries = {k: v for k, v in entries.items() if os.path.exists(k.split("\0")[0])}
            newest = sorted(entries.items(), key=lambda kv: kv[1].get("at", 0), reverse=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".probes-")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(dict(newest[:_MAX_ENTRIES]), out)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not cache the model probe verdict: %s", exc.strerror or exc)


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"llama.cpp crashed on it in a test load ({name})"
    return f"llama.cpp could not load it in a test load (exit code {returncode})"


def run_probe(path: Path, *, n_threads: int, timeout: float) -> Verdict:
    """Load `path` in a child process; the verdict, never an exception for a bad file."""
    cmd = [sys.executable, "-m", "helios_lsp.engine.probe_child", str(path), str(n_threads)]
    started = time.monotonic()
    try:
        # No backtrace: ggml would attach gdb to the dying child, slowly and verbosely.
        env = {**os.environ, "GGML_NO_BACKTRACE": "1"}
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ModelError(f"the test load of the model did not finish in {timeout:.0f} s") from None
    except OSError as exc:
        raise ModelError(f"could not start the test load of the model: {exc.strerror}") from None
    if done.returncode == 0:
        log.info("model file passed its test load in %.1f s", time.monotonic() - started)
        return Verdict(True, "")
    output = done.stderr.decode("utf-8", "replace").strip().splitlines()
    # Its last words: the failed assert, or the load error, is the last line.
    said = output[-1][-_STDERR_TAIL:] if output else "nothing"
    reason = _describe_exit(done.returncode)
    # The file's owner is the local user: the log may name the file and quote llama.cpp.
    log.error("refusing model file %s: %s; llama.cpp said: %r", path, reason, said)
    return Verdict(False, reason)


def check_model_file(path: Path, *, cache_dir: Path, n_threads: int,
                     timeout: float = 300.0) -> None:
    """Raise ModelRefusedError unless `path` is known to load without killing the process."""
    try:
        key = _key(path)
    except OSError as exc:
        raise ModelError(f"cannot read the model file: {exc.strerror}") from None
    cache = VerdictCache(cache_dir)
    verdict = cache.get(key)
    if verdict is None:
        verdict = run_probe(path, n_threads=n_threads, timeout=timeout)
        cache.put(key, verdict)
    elif not verdict.ok:
        log.error("refusing model file %s: %s (remembered from an earlier test load; "
                  "replace the file to try again)", path, verdict.reason)
    if not verdict.ok:
        raise ModelRefusedError(f"the model file was refused: {verdict.reason}")
