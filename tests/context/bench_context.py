"""Benchmark of the context library on a realistic workspace (not a pytest test).

    python -m tests.context.bench_context --tree /tmp/ctx-tree --build   # make the tree once
    python -m tests.context.bench_context --tree /tmp/ctx-tree           # measure

The tree is copied from this venv's site-packages (Python), npm's own lib (JavaScript,
JSON) and the standard library, up to --files indexable files; it is never committed.
Measured: tree-sitter parse cost per 1,000 lines, the time to index the tree, the
longest lateness of an asyncio loop ticking every 5 ms in the same process meanwhile,
memory (RSS, and in a second process the Python heap by tracemalloc), select() times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

from helios_lsp.engine.context import ContextLimits, ContextQuery, ContextSources, syntax
from helios_lsp.engine.context.filetypes import grammar_for, language_of
from helios_lsp.engine.context.ignore import SKIPPED_DIRS

IDLE_SECONDS = 20  # the loop's lateness with nothing running, to compare with


def _sources() -> list[Path]:
    npm = Path(subprocess.run(["npm", "root", "-g"], capture_output=True, text=True).stdout.strip())
    return [
        Path(sysconfig.get_paths()["purelib"]),
        npm / "npm",
        Path(sysconfig.get_paths()["stdlib"]),
    ]


def build_tree(dest: Path, files: int) -> int:
    """Copy up to `files` indexable files (at most 256 KiB each) into dest."""
    if dest.exists():
        shutil.rmtree(dest)
    count = 0
    for source in _sources():
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            dirnames[:] = [d for d in dirnames if d not in ("__pycache__", "site-packages")]
            for name in sorted(filenames):
                if count >= files:
                    return count
                path = Path(dirpath, name)
                if language_of(name) is None or path.is_symlink():
                    continue
                try:
                    if path.stat().st_size > 256 << 10:
                        continue
                except OSError:
                    continue
                rel = path.relative_to(source).parts
                # Keep the files indexable: rename directories the walk would skip.
                parts = [
                    f"_{p.lstrip('.')}" if p in SKIPPED_DIRS or p.startswith(".") else p
                    for p in rel
                ]
                top = f"{source.name}_" if source.name in SKIPPED_DIRS else source.name
                target = dest.joinpath(top, *parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                count += 1
    return count


def parse_cost(tree: Path, sample: int = 300) -> dict[str, object]:
    """ms per 1,000 lines for tree-sitter's parse alone and for the whole analysis."""
    paths = sorted(p for p in tree.rglob("*") if p.is_file() and language_of(p.name))
    random.Random(1).shuffle(paths)
    by_grammar: dict[str, list[float]] = {}
    totals = {"lines": 0, "parse": 0.0, "analyze": 0.0}
    for path in paths[:sample]:
        data = path.read_bytes()
        grammar = grammar_for(language_of(path.name) or "", path.name)
        if grammar is None:
            continue
        text = data.decode("utf-8", "replace")
        lines = text.count("\n") + 1
        t0 = time.perf_counter()
        syntax.parse(data, grammar)
        t1 = time.perf_counter()
        syntax.analyze(text, grammar, data)
        t2 = time.perf_counter()
        totals["lines"] += lines
        totals["parse"] += t1 - t0
        totals["analyze"] += t2 - t1
        by_grammar.setdefault(grammar, []).extend([lines, t1 - t0])
    per_k = 1000 / max(totals["lines"], 1) * 1000
    return {
        "files": min(sample, len(paths)),
        "lines": totals["lines"],
        "parse_ms_per_1000_lines": round(totals["parse"] * per_k, 2),
        "analyze_ms_per_1000_lines": round(totals["analyze"] * per_k, 2),
    }


def _rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def _ticker(stop: threading.Event, lateness: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.005)
        lateness.append(time.perf_counter() - t - 0.005)


async def index_under_loop(tree: Path) -> tuple[ContextSources, dict[str, object]]:
    sources = ContextSources(ContextLimits(sweep_seconds=3600))
    # The machine's own noise first: the same ticker with nothing else running.
    stop = threading.Event()
    quiet: list[float] = []
    ticker = asyncio.create_task(_ticker(stop, quiet))
    await asyncio.sleep(IDLE_SECONDS)
    stop.set()
    await ticker
    quiet.sort()
    stop = threading.Event()
    lateness: list[float] = []
    ticker = asyncio.create_task(_ticker(stop, lateness))
    await asyncio.sleep(0.2)
    rss_before = _rss_mib()[0]
    started = time.perf_counter()
    sources.set_folders([tree])
    await asyncio.to_thread(sources.wait_ready, 600)
    wall = time.perf_counter() - started
    stop.set()
    await ticker
    rss_after, rss_peak = _rss_mib()
    lateness.sort()
    stats = sources.stats()
    return sources, {
        "files": stats["files"],
        "chunks": stats["chunks"],
        "bytes": stats["bytes"],
        "skipped": stats["skipped"],
        "skipped_cap": stats["skipped_cap"],
        "index_seconds": stats["seconds"],
        "wall_seconds": round(wall, 2),
        "idle_seconds": IDLE_SECONDS,
        "idle_loop_ticks": len(quiet),
        "idle_loop_ticks_late_over_50ms": sum(1 for x in quiet if x > 0.05),
        "idle_loop_lateness_max_ms": round(quiet[-1] * 1000, 2),
        "idle_loop_lateness_p99_ms": round(quiet[int(len(quiet) * 0.99)] * 1000, 2),
        "loop_ticks": len(lateness),
        "loop_ticks_late_over_50ms": sum(1 for x in lateness if x > 0.05),
        "loop_lateness_max_ms": round(lateness[-1] * 1000, 2),
        "loop_lateness_p99_ms": round(lateness[int(len(lateness) * 0.99)] * 1000, 2),
        "loop_lateness_median_ms": round(lateness[len(lateness) // 2] * 1000, 2),
        "rss_before_index_mib": round(rss_before, 1),
        "rss_after_index_mib": round(rss_after, 1),
        "rss_peak_mib": round(rss_peak, 1),
    }


def select_times(sources: ContextSources, tree: Path, queries: int = 200) -> dict[str, object]:
    paths = sorted(p for p in tree.rglob("*.py") if p.is_file()) + sorted(
        p for p in tree.rglob("*.js") if p.is_file()
    )
    rng = random.Random(7)
    picks = rng.sample(paths, min(queries, len(paths)))
    # Open documents as an editor would have them: a few recently used files.
    for i, path in enumerate(picks[:8]):
        text = path.read_text(errors="replace")
        lang = language_of(path.name) or ""
        sources.document_opened(f"doc{i}", path, path.name, lang, text)
    times, counts, sizes = [], [], []
    for path in picks:
        text = path.read_text(errors="replace")
        if not text.strip():
            continue
        cursor = rng.randrange(len(text) // 2, len(text) + 1)
        lang = language_of(path.name) or ""
        query = ContextQuery(f"q:{path}", path, path.name, lang, text, cursor)
        t = time.perf_counter()
        snippets = sources.select(query, 6000)
        times.append(time.perf_counter() - t)
        counts.append(len(snippets))
        sizes.append(sum(len(s.text) for s in snippets))
        # The same query again: what a keystroke costs once the document is parsed.
    repeat = []
    for path in picks[:50]:
        text = path.read_text(errors="replace")
        lang = language_of(path.name) or ""
        query = ContextQuery("rep", path, path.name, lang, text, len(text) // 2)
        sources.select(query, 6000)
        t = time.perf_counter()
        sources.select(
            ContextQuery("rep", path, path.name, lang, text[:-1] + " ", len(text) // 2), 6000
        )
        repeat.append(time.perf_counter() - t)
    times.sort()
    repeat.sort()
    return {
        "queries": len(times),
        "select_ms_median": round(statistics.median(times) * 1000, 2),
        "select_ms_p95": round(times[int(len(times) * 0.95)] * 1000, 2),
        "select_ms_max": round(times[-1] * 1000, 2),
        "keystroke_select_ms_median": round(statistics.median(repeat) * 1000, 2),
        "keystroke_select_ms_p95": round(repeat[int(len(repeat) * 0.95)] * 1000, 2),
        "snippets_median": statistics.median(counts),
        "chars_median": statistics.median(sizes),
    }


def heap_run(tree: Path) -> dict[str, object]:
    """In this process: the Python heap (tracemalloc) the index takes."""
    import tracemalloc

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    sources = ContextSources(ContextLimits(sweep_seconds=3600))
    sources.set_folders([tree])
    sources.wait_ready(1200)
    current, peak = tracemalloc.get_traced_memory()
    stats = sources.stats()
    sources.close()
    return {
        "files": stats["files"],
        "heap_index_mib": round((current - base) / 2**20, 1),
        "heap_peak_mib": round((peak - base) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--build", action="store_true", help="(re)build the tree first")
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--heap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.heap:
        print(json.dumps(heap_run(args.tree)))
        return
    if args.build or not args.tree.exists():
        print(f"built {build_tree(args.tree, args.files)} files in {args.tree}", flush=True)
    result: dict[str, object] = {"load_average": os.getloadavg()}
    result["parse"] = parse_cost(args.tree)
    sources, result["index"] = asyncio.run(index_under_loop(args.tree))
    result["select"] = select_times(sources, args.tree)
    result["rss_after_selects_mib"] = round(_rss_mib()[0], 1)
    sources.close()
    heap = subprocess.run(
        [sys.executable, "-m", "tests.context.bench_context", "--tree", str(args.tree), "--heap"],
        capture_output=True,
        text=True,
        check=True,
    )
    result["heap"] = json.loads(heap.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
