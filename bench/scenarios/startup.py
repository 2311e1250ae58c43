"""Start-up and memory.

Start-up: from process start to the first `/health` 200 of `helios serve` (the model
loaded), against a bare process that imports llama_cpp and loads the same model (from
process start to the model loaded: the same interpreter start and imports are counted).
The peer's start (to its first /v1/models 200) is shown for reference.

Memory: resident set (VmRSS) after one completion, and its peak (VmHWM), of
`helios lsp` with its HTTP sidecar against the bare process; `helios serve` and the peer
for reference. Repeated `startup_reps` times, contenders alternating."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.contenders import ROOT, HeliosHTTP, HeliosLSP, Peer, Unavailable, bench_env, rss_of
from bench.context import Context


def _bare(ctx: Context, prompt_file: str) -> dict[str, Any]:
    cfg = ctx.config
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._bare_child", str(ctx.model), str(cfg.threads),
         str(cfg.n_ctx), prompt_file],
        cwd=ROOT, env=bench_env(ctx.tmp), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    try:
        ready = proc.stdout.readline()
        ready_at = time.perf_counter() - started
        done = proc.stdout.readline()
        if not ready.startswith("READY ") or not done.startswith("DONE "):
            raise Unavailable(f"bare child failed: {ready!r} {done!r}")
        inner = json.loads(ready[6:])
        after = json.loads(done[5:])
    finally:
        proc.stdin.close()
        proc.wait(30)
    return {"contender": "bare", "startup_seconds": ready_at,
            "load_seconds": inner["load_seconds"], "import_seconds": inner["import_seconds"],
            "rss_loaded_mib": inner["rss_mib"], **after}


def _measure(ctx: Context, kind: str, prompt: str, prompt_file: str) -> dict[str, Any]:
    cfg = ctx.config
    if kind == "bare":
        return _bare(ctx, prompt_file)
    if kind == "helios-serve":
        c = HeliosHTTP(ctx.model, cfg.threads, ctx.tmp, client_id="bench-startup")
        try:
            loaded = rss_of(c.pid)
            c.complete(prompt, "\n", "startup.py", 16, 0.0)
            return {"contender": kind, "startup_seconds": c.startup_seconds,
                    "rss_loaded_mib": loaded["rss_mib"], **rss_of(c.pid)}
        finally:
            c.close()
    if kind == "helios-lsp+sidecar":
        c = HeliosLSP(ctx.model, cfg.threads, ctx.tmp, 16, sidecar=True)
        try:
            loaded = rss_of(c.pid)
            uri = "file:///bench/startup/startup.py"
            c.open(uri, prompt + "\n")
            c.complete(uri, prompt)
            sidecar = None
            if c.http_port:
                from bench.contenders import _HttpClient

                sidecar = _HttpClient(c.http_port).get_status("/health")
            return {"contender": kind, "startup_seconds": c.startup_seconds,
                    "sidecar_health": sidecar, "rss_loaded_mib": loaded["rss_mib"],
                    **rss_of(c.pid)}
        finally:
            c.close()
    c = Peer(ctx.model, cfg.threads, cfg.n_ctx, ctx.tmp)
    try:
        loaded = rss_of(c.pid)
        c.complete(prompt, 16, ["\n"])
        return {"contender": kind, "startup_seconds": c.startup_seconds,
                "rss_loaded_mib": loaded["rss_mib"], **rss_of(c.pid)}
    finally:
        c.close()


def run(ctx: Context, prompt: str) -> dict[str, Any]:
    prompt_file = ctx.tmp / "startup-prompt.py"
    prompt_file.write_text(prompt, encoding="utf-8")
    kinds = ["bare", "helios-serve", "helios-lsp+sidecar", "peer"]
    records: list[dict[str, Any]] = []
    for rep in range(ctx.config.startup_reps):
        shift = rep % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            ctx.log(f"start-up {rep + 1}/{ctx.config.startup_reps}: {kind}")
            try:
                records.append({"rep": rep, **_measure(ctx, kind, prompt, str(prompt_file))})
            except Unavailable as exc:
                records.append({"rep": rep, "contender": kind, "unavailable": str(exc)})
    return {"records": records}
