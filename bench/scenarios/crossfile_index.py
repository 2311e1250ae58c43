"""Indexing a big workspace: how long it takes, the memory it holds, and the longest
delay it causes to a request.

A tree of N source files (5,000 in a full run) is written to the run's temp dir (the
.py files of site-packages and the .js files of npm's lib/, copied in rounds until there
are enough; see `crossfile_workload.build_tree`). `helios lsp` starts with context on and
no workspace folder; once idle, `helios.status` is sent every ~20 ms for a baseline, then
the tree is added as a workspace folder (workspace/didChangeWorkspaceFolders) and the
requests go on until the index says "ready" (and a second after). Each request's latency
is the time from writing it to reading its answer. Reported: indexing time (status
`seconds`, and our own clock), resident memory (VmRSS) before and after, and the longest
latency during indexing beyond the baseline's median.
"""

from __future__ import annotations

import time
from typing import Any

from bench.contenders import HeliosLSP, rss_of
from bench.context import Context
from bench.crossfile_workload import build_tree
from bench.scenarios.crossfile import OPTIONS, index_ready, wait_idle, workspace_status
from bench.stats import summary

PROBE_INTERVAL = 0.02
TAIL = 1.0  # seconds of requests after "ready": work that finishes after the flag
NO_CONTEXT_WINDOW = 5.0  # a Helios that reports no context: requests for this long only
TARGET_DELAY = 0.050  # seconds beyond the baseline
TARGET_RSS_MIB = 100


def _probe(lsp: HeliosLSP) -> tuple[float, dict[str, Any]]:
    _, pending = lsp.rpc.send_request("workspace/executeCommand",
                                      {"command": "helios.status", "arguments": []})
    result = lsp.rpc.wait(pending, 60)
    return (pending.received_at or time.perf_counter()) - pending.sent_at, (
        result if isinstance(result, dict) else {})


def _pace(started: float) -> None:
    left = PROBE_INTERVAL - (time.perf_counter() - started)
    if left > 0:
        time.sleep(left)


def run(ctx: Context, n_files: int, baseline_seconds: float, timeout: float
        ) -> dict[str, Any]:
    cfg = ctx.config
    tree = ctx.tmp / "crossfile-tree"
    ctx.log(f"crossfile index: writing {n_files} files")
    written = build_tree(tree, n_files)
    ctx.log("crossfile index: starting helios-lsp-index")
    lsp = HeliosLSP(ctx.model, cfg.threads, ctx.tmp, cfg.max_tokens,
                    options=OPTIONS["workspace"], workspace_folders=[],
                    name="helios-lsp-index")
    samples: list[dict[str, Any]] = []
    try:
        wait_idle(lsp)
        baseline = []
        end = time.perf_counter() + baseline_seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            baseline.append(_probe(lsp)[0])
            _pace(t)
        rss_before = rss_of(lsp.pid)
        ctx.log("crossfile index: adding the workspace folder")
        t0 = time.perf_counter()
        lsp.change_workspace_folders([tree], [])
        ready_at: float | None = None
        reported = seen_indexing = False
        ready_since: float | None = None
        while True:
            t = time.perf_counter()
            latency, status = _probe(lsp)
            ws = workspace_status(status)
            reported = reported or ws is not None
            elapsed = t - t0
            state = ws.get("state") if ws else None
            samples.append({"t": elapsed, "latency": latency, "after_ready": ready_at is not None,
                            "state": state, "files": ws.get("files") if ws else None})
            seen_indexing = seen_indexing or state == "indexing"
            ready_since = (elapsed if ready_since is None else ready_since) if (
                state == "ready") else None
            if ready_at is None and index_ready(ws, seen_indexing,
                                                elapsed - (ready_since or elapsed)):
                ready_at = elapsed
            if ready_at is not None and elapsed > ready_at + TAIL:
                break
            if (not reported and elapsed > NO_CONTEXT_WINDOW) or elapsed > timeout:
                break
            _pace(t)
        rss_after = rss_of(lsp.pid)
        final = workspace_status(lsp.status())
    finally:
        lsp.close()
    ctx.log(f"crossfile index: ready after {ready_at} s" if ready_at is not None else
            "crossfile index: the index never said ready" + (
                "" if reported else " (this Helios reports no context)"))
    return {"written": written, "baseline": baseline, "samples": samples,
            "ready_after": ready_at, "reported": reported, "workspace": final,
            "rss_before": rss_before, "rss_after": rss_after, "timeout": timeout}


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    base = summary(r["baseline"])
    during = summary(s["latency"] for s in r["samples"])
    ws = r.get("workspace") or {}
    before, after = r["rss_before"].get("rss_mib"), r["rss_after"].get("rss_mib")
    delay = (during["max"] - base["median"]
             if r["reported"] and during["max"] is not None and base["median"] is not None
             else None)
    return {
        "written_files": r["written"]["files"], "written_bytes": r["written"]["bytes"],
        "distinct_sources": r["written"].get("distinct_sources"),
        "reported": r["reported"],
        "indexed_files": ws.get("files"), "indexed_bytes": ws.get("bytes"),
        "state": ws.get("state"), "seconds": ws.get("seconds"),
        "seconds_wall": r["ready_after"],
        "rss_before_mib": before, "rss_after_mib": after,
        "rss_growth_mib": after - before if (r["reported"] and before is not None
                                             and after is not None) else None,
        "peak_rss_mib": r["rss_after"].get("peak_rss_mib"),
        "baseline": base, "during": during, "probes": len(r["samples"]),
        "delay_beyond_baseline": delay,
    }


def check_targets(s: dict[str, Any], target) -> list[dict[str, Any]]:
    d, m = s.get("delay_beyond_baseline"), s.get("rss_growth_mib")
    n = s.get("written_files")
    return [
        target("7-index-delay", f"Cross-file: longest delay to a request while indexing a "
               f"{n}-file workspace, beyond the baseline", d, TARGET_DELAY, "<=",
               "–" if d is None else f"{1000 * d:.0f} ms"),
        target("7-index-rss", f"Cross-file: memory the index of a {n}-file workspace holds "
               "(VmRSS after − before)", m, TARGET_RSS_MIB, "<=",
               "–" if m is None else f"{m} MiB"),
    ]


def markdown(s: dict[str, Any]) -> list[str]:
    def ms(x: float | None) -> str:
        return "–" if x is None else f"{1000 * x:.1f} ms"

    def n(x: Any, unit: str = "") -> str:
        return "–" if x is None else f"{x:.1f}{unit}" if isinstance(x, float) else f"{x}{unit}"

    lines = [f"### Indexing a {s['written_files']}-file workspace", "",
             f"{s['written_files']} files ({s['written_bytes'] / 2**20:.1f} MiB, "
             f"{s['distinct_sources']} distinct) added as a workspace folder after a baseline; "
             f"`helios.status` every {1000 * PROBE_INTERVAL:.0f} ms throughout "
             f"({s['probes']} requests while indexing).", ""]
    if not s["reported"]:
        lines += ["This Helios reports no `engine.context` in `helios.status`: nothing was "
                  "indexed, so the figures below are not about indexing.", ""]
    lines += ["| figure | value |", "| --- | --- |",
              f"| files indexed (status) | {n(s['indexed_files'])} |",
              f"| indexing time (status `seconds` / our clock to \"ready\") | "
              f"{n(s['seconds'], ' s')} / {n(s['seconds_wall'], ' s')} |",
              f"| VmRSS before → after (growth) | {n(s['rss_before_mib'])} → "
              f"{n(s['rss_after_mib'])} MiB ({n(s['rss_growth_mib'], ' MiB')}) |",
              f"| request latency before: median / max | {ms(s['baseline']['median'])} / "
              f"{ms(s['baseline']['max'])} |",
              f"| while indexing: median / p95 / max | {ms(s['during']['median'])} / "
              f"{ms(s['during']['p95'])} / {ms(s['during']['max'])} |",
              f"| longest delay beyond the baseline | {ms(s['delay_beyond_baseline'])} |", ""]
    return lines
