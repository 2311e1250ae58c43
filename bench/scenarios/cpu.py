"""CPU seconds per keystroke (issue 18): what typing costs all Helios processes, background
work included, against the CPU the answers themselves need.

A `helios serve` of its own (by default on a shared engine, as users run it: the server
forwards to an engine daemon in a private runtime directory, stopped at the end) gets the
keystrokes of three scenarios, one part at a time:

- replay: the replay scenario's segments, typed again (no other contender);
- jumps: the jumps scenario's places (POST /prefetch when the cursor lands, the pause, the
  line's first characters);
- trimmed-file, trimmed-sent: the trimmed client (the last 6,000 characters before the
  cursor), with `position.line` counted in the whole file, then in the text sent.

Keystrokes come no faster than one every `--typing-ms` (150 ms), or when the answer
arrives if that is later: background work gets the gaps it gets while a user types.

Around each part, once the engine is idle (no job, none queued, no warming, and its
processes' CPU time standing still): utime + stime (+ reaped children) from
/proc/<pid>/stat of the server and of the engine daemon, and the engine's counters
(`answer_cpu_seconds`, `background_cpu_seconds`, `prompt_tokens_evaluated`,
`prefetch_tokens`, ...). The bench's own GET /status reads cost Helios CPU too (about a
millisecond each, measured before the parts): their estimate is shown and taken out of
Helios's total.

What the answers themselves need is measured too, on a second server in the same run (each
part right after Helios's own, the two taking turns): `need` has no quick window and is sent
no POST /prefetch, so every answer evaluates the whole prompt it is answered from and
nothing is warmed ahead. Its total is the CPU the same keystrokes need when no work is done
in the background. Issue 18's target: Helios's total / `need`'s total ≤ 1.5×. Also shown:
Helios's total / its own answers' CPU, which books the full window of a place answered
from its quick window as background (so it is 2-4× by construction at a place typed for a
few dozen keys).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from bench.contenders import HeliosHTTP, Unavailable, _HttpClient, engine_busy
from bench.context import Context
from bench.workload import SourceFile, jump_plan, replay_segments

MODES = ("shared", "one-process")
PARTS = ("replay", "jumps", "trimmed-file", "trimmed-sent")
TARGET = 1.5  # issue 18: all Helios CPU / the answers' CPU
CALIBRATION_READS = 100  # GET /status at idle, to price the bench's own reads
TICK = os.sysconf("SC_CLK_TCK")


def process_ticks(pid: int) -> int | None:
    """utime + stime + cutime + cstime of `pid` (all its threads, and its reaped children),
    in clock ticks; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return sum(int(x) for x in fields[11:15])  # fields 14-17 of proc(5)


# The engine's counters kept at every GET /status the scenarios read anyway: which request
# the background work followed (see `attribute`).
TIMELINE_STATS = ("requests", "quick_answers", "prefetches", "prefetch_tokens",
                  "prompt_tokens_evaluated", "answer_cpu_seconds", "background_cpu_seconds",
                  "context_blocks")


class _CountingClient(_HttpClient):
    """The HTTP client, counting what it sends by method and path; the requests sent and
    the engine's counters in each /status answer, in order (a timeline, no extra read)."""

    def __init__(self, port: int):
        super().__init__(port)
        self.calls: Counter[str] = Counter()
        self.timeline: list[dict[str, Any]] = []

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any, float]:
        self.calls[f"{method} {path}"] += 1
        if method == "POST":
            self.timeline.append({"call": path})
        out = super().request(method, path, body, headers)
        stats = ((out[2] or {}).get("engine") or {}).get("stats") \
            if method == "GET" and path == "/status" and isinstance(out[2], dict) else None
        if isinstance(stats, dict):
            self.timeline.append({"stats": {k: stats.get(k, 0) for k in TIMELINE_STATS}})
        return out


class CpuHelios(HeliosHTTP):
    """`helios serve` for this scenario: on a shared engine in a private runtime directory
    (or holding the model itself), its requests counted, keystrokes paced."""

    name = "helios-http"  # what the replay, jumps and trimmed scenarios call Helios

    def __init__(self, model: Path, threads: int, tmp: Path, share: bool, interval: float,
                 env: dict[str, str] | None = None):
        # Short and under /tmp: a unix socket path holds at most 107 bytes.
        self.runtime = Path(tempfile.mkdtemp(prefix="hcpu-", dir="/tmp"))
        self.runtime.chmod(0o700)
        self.share, self.interval = share, interval
        env = {**(env or {}), "HELIOS_SHARE": "true" if share else "false",
               "HELIOS_SHARE_IDLE": "2", "XDG_RUNTIME_DIR": str(self.runtime)}
        try:
            super().__init__(model, threads, tmp, client_id="bench-cpu", env=env)
        except Unavailable:
            self._remove_runtime()
            raise
        self.http.close()
        self.http = _CountingClient(self.port)
        self._next_key = 0.0
        self.engine_pid: int | None = None
        if share:
            shared = self.engine_snapshot().get("shared") or {}
            self.engine_pid = shared.get("pid") if isinstance(shared.get("pid"), int) else None
            if self.engine_pid is None or not self._ours(self.engine_pid):
                self.close()
                raise Unavailable(f"no shared engine of this run in /status: {shared}")

    @property
    def pids(self) -> list[int]:
        return [self.pid] + ([self.engine_pid] if self.engine_pid is not None else [])

    def ticks(self) -> int:
        return sum(process_ticks(p) or 0 for p in self.pids)

    def cpu_seconds(self) -> dict[str, float]:
        out = {"server": (process_ticks(self.pid) or 0) / TICK}
        if self.engine_pid is not None:
            out["engine"] = (process_ticks(self.engine_pid) or 0) / TICK
        return out

    def complete(self, *args: Any, **kwargs: Any):
        """A keystroke, `interval` after the previous one at the earliest."""
        wait = self._next_key - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._next_key = time.monotonic() + self.interval
        return super().complete(*args, **kwargs)

    def wait_idle(self, timeout: float = 300, quiet: float = 0.3) -> float:
        """Until the engine works on nothing: its processes' CPU time stood still for
        `quiet` seconds (read from /proc: free for Helios), then one GET /status confirms
        no job, none queued and no warming. Seconds waited."""
        started = time.monotonic()
        last, still_since = self.ticks(), None
        while time.monotonic() - started < timeout:
            time.sleep(0.05)
            now = self.ticks()
            if now - last > 1:  # more than a tick in 50 ms: working
                still_since = None
            elif still_since is None:
                still_since = time.monotonic()
            last = now
            if still_since is not None and time.monotonic() - still_since >= quiet:
                if not engine_busy(self.engine_snapshot()):
                    return time.monotonic() - started
                still_since = None
        raise RuntimeError(f"cpu: Helios was still busy after {timeout:.0f} s")

    def _ours(self, pid: int) -> bool:
        """Whether `pid` was started with this server's runtime directory (not another
        user's or helper's engine, nor a reused pid)."""
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                return f"XDG_RUNTIME_DIR={self.runtime}".encode() in f.read()
        except OSError:
            return False

    def close(self) -> None:
        super().close()
        pid = self.engine_pid
        if pid is not None:
            # The engine leaves HELIOS_SHARE_IDLE (2 s) after its last client; then SIGTERM,
            # then SIGKILL, by its pid: nothing this scenario started outlives it.
            for sig, wait in ((None, 6.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                if sig is not None and self._ours(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + wait
                while self._ours(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not self._ours(pid):
                    break
        self._remove_runtime()

    def _remove_runtime(self) -> None:
        shutil.rmtree(self.runtime, ignore_errors=True)


class _CpuContext(Context):
    """The scenarios' context with only this server, whose idle waits read /proc rather
    than poll /status every 20 ms (each read costs Helios CPU)."""

    http: CpuHelios | None

    def quiesce(self, *contenders: Any, timeout: float = 300.0) -> None:
        if self.http is not None:
            self.http.wait_idle(timeout)


def _numbers(d: dict[str, Any] | None) -> dict[str, float]:
    return {k: v for k, v in (d or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def _delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, float]:
    a, b = _numbers(before), _numbers(after)
    return {k: round(b[k] - a.get(k, 0), 6) for k in b}


def _measure(helios: CpuHelios, work, ctx: Context) -> dict[str, Any]:
    """Run `work(ctx)` between two idle moments: CPU of every Helios process, the engine's
    counters and the requests sent, over that span."""
    helios.wait_idle(quiet=0.5)
    snap0 = helios.engine_snapshot()
    calls0 = Counter(helios.http.calls)
    helios.http.timeline = [{"stats": {k: (snap0.get("stats") or {}).get(k, 0)
                                       for k in TIMELINE_STATS}}]
    cpu0 = helios.cpu_seconds()
    started = time.perf_counter()
    detail = work(ctx)
    helios.wait_idle(quiet=0.5)
    wall = time.perf_counter() - started
    cpu1 = helios.cpu_seconds()
    calls = dict(helios.http.calls - calls0)
    snap1 = helios.engine_snapshot()
    engine_pid = (snap1.get("shared") or {}).get("pid")
    return {
        "wall_seconds": wall,
        "cpu": {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
        "calls": calls,
        "stats": _delta(snap0.get("stats"), snap1.get("stats")),
        "this_window": _delta(snap0.get("this_window"), snap1.get("this_window")),
        "engine_restarted": helios.engine_pid is not None and engine_pid != helios.engine_pid,
        "timeline": helios.http.timeline,
        "detail": detail,
    }


def _calibrate(helios: CpuHelios, n: int = CALIBRATION_READS) -> dict[str, Any]:
    """CPU of all Helios processes per GET /status, at idle."""
    helios.wait_idle(quiet=0.5)
    before = helios.ticks()
    started = time.perf_counter()
    for _ in range(n):
        helios.status()
    wall = time.perf_counter() - started
    cpu = (helios.ticks() - before) / TICK
    return {"reads": n, "cpu_seconds": cpu, "per_read": cpu / n, "wall_seconds": wall}


# The reference: what the answers need when nothing is done ahead of them.
NEED_ENV = {"HELIOS_QUICK_WINDOW_LINES": "0"}


def run(ctx: Context, files: list[SourceFile], interval: float, pause: float,
        modes: tuple[str, ...] = ("shared",), parts: tuple[str, ...] = PARTS,
        prefetch: bool = True) -> dict[str, Any]:
    from bench.scenarios import jumps, replay, trimmed

    cfg = ctx.config

    # Each part, given the context and whether the client sends POST /prefetch.
    work = {
        "replay": lambda c, prefetching: replay.run(c, replay_segments(
            files, cfg.segments, cfg.segment_chars, cfg.seed, cfg.max_prefix_chars)),
        "jumps": lambda c, prefetching: jumps.run(c, jump_plan(
            files, cfg.jumps, cfg.jump_files, cfg.seed, cfg.max_prefix_chars), pause,
            prefetching),
        "trimmed-file": lambda c, prefetching: trimmed.run(c, reading="file"),
        "trimmed-sent": lambda c, prefetching: trimmed.run(c, reading="sent"),
    }

    levers = {k: v for k, v in os.environ.items() if k.startswith("BENCH_HELIOS_")}
    out: dict[str, Any] = {"interval": interval, "pause": pause, "prefetch": prefetch,
                           "levers": levers, "need_env": NEED_ENV, "modes": {}}
    for mode in modes:
        servers: dict[str, CpuHelios] = {}
        try:
            for role, env in (("helios", None), ("need", NEED_ENV)):
                ctx.log(f"cpu: starting helios serve ({mode}, {role})")
                try:
                    servers[role] = CpuHelios(ctx.model, cfg.threads, ctx.tmp,
                                              share=mode == "shared", interval=interval,
                                              env=env)
                except Unavailable as exc:
                    ctx.unavailable[f"helios-cpu-{mode}-{role}"] = str(exc)
                    ctx.log(f"cpu: helios serve ({mode}, {role}) unavailable: {exc}")
            if "helios" not in servers:
                continue
            res: dict[str, Any] = {
                role: {"pids": {"server": h.pid, "engine": h.engine_pid},
                       "calibration": _calibrate(h), "parts": {}}
                for role, h in servers.items()}
            contexts = {role: _CpuContext(config=cfg, model=ctx.model, tmp=ctx.tmp, http=h,
                                          started=ctx.started) for role, h in servers.items()}
            for part in parts:
                for role, helios in servers.items():  # taking turns: noise hits both alike
                    ctx.log(f"cpu ({mode}, {role}): {part}")
                    prefetching = prefetch and role == "helios"
                    res[role]["parts"][part] = _measure(
                        helios, partial(work[part], prefetching=prefetching), contexts[role])
            out["modes"][mode] = res
        finally:
            for helios in servers.values():
                helios.close()
    return out


# --- summary, targets, report (called by bench.report) -------------------------------

CAUSES = ("prefetch", "after a quick answer", "later")


def attribute(timeline: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Background work (prompt tokens warmed, background CPU, context blocks put in use)
    between two /status reads, put down to what it followed: an interval in which a POST
    /prefetch was sent, `prefetch`; else the interval after an answer from the quick window
    (the widening), `after a quick answer`; else `later` (warming that goes on after
    ordinary answers: a widening preempted and resumed, a context block, ...)."""
    out = {c: {"tokens": 0.0, "cpu": 0.0, "context_blocks": 0.0, "intervals": 0.0}
           for c in CAUSES}
    prev: dict[str, float] | None = None
    cause, calls = "later", []
    for event in timeline:
        if "call" in event:
            calls.append(event["call"])
            continue
        snap = event["stats"]
        if prev is not None:
            here = "prefetch" if "/prefetch" in calls else cause
            delta = {k: snap.get(k, 0) - prev.get(k, 0) for k in TIMELINE_STATS}
            if delta["prefetch_tokens"] or delta["background_cpu_seconds"] > 0:
                out[here]["tokens"] += delta["prefetch_tokens"]
                out[here]["cpu"] += delta["background_cpu_seconds"]
                out[here]["context_blocks"] += delta["context_blocks"]
                out[here]["intervals"] += 1
            if "/complete" in calls:  # what follows follows this answer
                cause = "after a quick answer" if delta["quick_answers"] > 0 else "later"
            elif "/prefetch" in calls:
                cause = "prefetch"
        prev, calls = snap, []
    return out


def _row(mode: str, part: str, m: dict[str, Any], per_read: float) -> dict[str, Any]:
    st, calls = m["stats"], m["calls"]
    keys = calls.get("POST /complete", 0)
    total = sum(m["cpu"].values())
    reads = calls.get("GET /status", 0)
    reads_cpu = reads * per_read
    helios = max(0.0, total - reads_cpu)
    answers = st.get("answer_cpu_seconds", 0.0)
    background = st.get("background_cpu_seconds", 0.0)
    return {
        "mode": mode, "part": part, "keystrokes": keys,
        "prefetch_requests": calls.get("POST /prefetch", 0),
        "wall_seconds": m["wall_seconds"],
        "cpu_by_process": m["cpu"],
        "total_cpu": total,
        "status_reads": reads,
        "status_reads_cpu": reads_cpu,
        "helios_cpu": helios,
        "answer_cpu": answers,
        "background_cpu": background,
        "other_cpu": helios - answers - background,
        "cpu_per_key_ms": 1000 * helios / keys if keys else None,
        "ratio": helios / answers if answers > 0 else None,
        "answer_tokens": st.get("prompt_tokens_evaluated", 0),
        "generated_tokens": st.get("generated_tokens", 0),
        "background_tokens": st.get("prefetch_tokens", 0),
        "warmings": st.get("prefetches", 0),
        "quick_answers": st.get("quick_answers", 0),
        "context_blocks": st.get("context_blocks", 0),
        "engine_requests": st.get("requests", 0),
        "cancelled": st.get("cancelled", 0) + st.get("dropped", 0),
        "engine_restarted": m["engine_restarted"],
        "background_by_cause": attribute(m.get("timeline") or []),
    }


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    rows = []
    per_read: dict[str, float] = {}
    for mode, res in result.get("modes", {}).items():
        ours, need = res["helios"], res.get("need")
        per_read[mode] = ours["calibration"]["per_read"]
        for part, m in ours["parts"].items():
            row = _row(mode, part, m, per_read[mode])
            needed = (_row(mode, part, need["parts"][part], need["calibration"]["per_read"])
                      if need is not None and part in need.get("parts", {}) else None)
            row["need"] = needed
            row["need_ratio"] = (row["helios_cpu"] / needed["helios_cpu"]
                                 if needed is not None and needed["helios_cpu"] > 0 else None)
            rows.append(row)
    return {"interval": result.get("interval"), "pause": result.get("pause"),
            "prefetch": result.get("prefetch", True), "levers": result.get("levers") or {},
            "need_env": result.get("need_env") or {},
            "per_status_read": per_read, "rows": rows}


def _label(r: dict[str, Any]) -> str:
    return r["part"] if r["mode"] == "shared" else f"{r['part']} ({r['mode']})"


def check_targets(s: dict[str, Any], target) -> list[dict[str, Any]]:
    from bench.report import _fmt_ratio

    return [target(f"8-cpu-{_label(r).replace(' (', '-').rstrip(')')}",
                   f"CPU per keystroke, {_label(r)}: all Helios processes (background "
                   "included) / what the same keystrokes need with nothing done ahead "
                   "(no quick window, no prefetch)", r.get("need_ratio"), TARGET, "<=",
                   _fmt_ratio(r.get("need_ratio")))
            for r in s.get("rows", [])]


def markdown(s: dict[str, Any]) -> list[str]:
    from bench.report import _fmt_ratio, _n, _table

    reads = ", ".join(f"{mode} {1000 * v:.2f} ms" for mode, v in
                      s.get("per_status_read", {}).items())
    lines = ["### CPU per keystroke (issue 18)", "",
             "A `helios serve` of its own (on a shared engine unless marked: the server and "
             "the engine daemon are both counted) gets the keystrokes of the replay, the jumps "
             "and the trimmed client (`position.line` counted in the file, then in the text "
             "sent), one part at a time, a key every "
             f"{1000 * (s.get('interval') or 0):.0f} ms at the fastest. Between two idle "
             "moments, the CPU time (utime + stime, /proc) of every Helios process, against "
             "the engine's own count of the CPU its completion jobs took (`answers`). "
             "`background`: warming the cache (widening the quick window, prefetch, context "
             "blocks); `other`: the rest (HTTP, forwarding, bookkeeping). The bench's own "
             f"GET /status reads (measured at idle: {reads or '–'} each) are taken out of "
             "the total. `answer / background tokens`: prompt tokens the engine evaluated for "
             "answers and for warming. `need`: the same keystrokes on a second server that does "
             "nothing ahead of the answers (no quick window: "
             + ", ".join(f"`{k}={v}`" for k, v in sorted(s.get("need_env", {}).items()))
             + "; no POST /prefetch), run right after Helios's, part by part: the CPU the "
             "answers themselves need. Target: total / need ≤ 1.5×."
             + ("" if s.get("prefetch", True) else " Jumps without POST /prefetch.")
             + "".join(f" `{k}={v}`." for k, v in sorted(s.get("levers", {}).items())), ""]
    rows = []
    for r in s.get("rows", []):
        need = r.get("need") or {}
        rows.append([_label(r), r["keystrokes"], _n(r["helios_cpu"], 2),
                     _n(r["answer_cpu"], 2), _n(r["background_cpu"], 2),
                     _n(r["other_cpu"], 2), _n(r["cpu_per_key_ms"], 1),
                     _n(need.get("helios_cpu"), 2), _fmt_ratio(r.get("need_ratio")),
                     _fmt_ratio(r["ratio"]),
                     f"{r['answer_tokens']:,.0f} / {r['background_tokens']:,.0f}",
                     f"{need.get('answer_tokens', 0):,.0f}" if need else "–",
                     f"{r['quick_answers']:.0f} / {r['warmings']:.0f}",
                     f"{r['status_reads']} ({_n(r['status_reads_cpu'], 2)} s)",
                     _n(r["wall_seconds"], 1)])
    lines += _table(["scenario", "keystrokes", "total CPU s", "answers CPU s",
                     "background CPU s", "other CPU s", "CPU per key (ms)", "need CPU s",
                     "**total / need**", "total / answers", "answer / background tokens",
                     "need: answer tokens", "quick answers / warmings",
                     "bench's /status reads (CPU)", "wall s"], rows)
    lines += ["Background work by what it followed (from the engine's counters at each "
              "/status the scenario read): a POST /prefetch; an answer from the quick "
              "window (the widening); later answers (a widening resumed, a context block). "
              "Prompt tokens warmed, CPU s, context blocks put in use.", ""]
    rows = [[_label(r), *(f"{c['tokens']:,.0f} tok, {c['cpu']:.2f} s"
                          + (f", {c['context_blocks']:.0f} blocks" if c["context_blocks"]
                             else "")
                          for c in (r["background_by_cause"][k] for k in CAUSES))]
            for r in s.get("rows", []) if "background_by_cause" in r]
    return lines + _table(["scenario", *CAUSES], rows)
