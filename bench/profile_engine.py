"""Where Helios' time goes on a keystroke: `python -m bench.profile_engine`.

Types `--keys` characters of a standard-library file (within lines) through the engine's
public `Engine.complete`, then runs the bare llama-cpp-python model on the very same prompt
tokens and sampled counts. Prints both totals and the top functions of the engine's worker
thread under cProfile, so the cost above the model is visible."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import threading
import time

from bench.contenders import Bare, sampled_not_kept
from bench.workload import load_files


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile_engine")
    p.add_argument("--file", default="queue.py")
    p.add_argument("--at", default="def put(self", help="start typing after this text")
    p.add_argument("--keys", type=int, default=30)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()

    from helios_lsp.engine import CompletionInput, Engine
    from helios_lsp.engine.model_source import embedded_model_path
    from helios_lsp.settings import Settings

    model_path = embedded_model_path()
    settings = Settings(model=str(model_path), n_threads=args.threads, typeahead=False)
    runner = asyncio.Runner()
    engine = Engine(settings)
    runner.run(engine.load())
    bare = Bare(model_path, args.threads, engine.snapshot()["n_ctx"])

    f = next(x for x in load_files() if x.basename == args.file)
    start = f.text.index(args.at) + len(args.at) // 2
    inputs = [CompletionInput(prefix=f.text[: start + k], suffix=f.text[start + k:],
                              filename=f.basename, max_tokens=64, temperature=0.0)
              for k in range(args.keys + 1)]

    def helios_run(inp):
        return runner.run(engine.complete(inp))

    def bare_run(inp, out):
        tokens = bare.helios_prompt(inp.prefix, inp.suffix, inp.filename, 64)
        tokens = tokens[:-1] if bare.heals(tokens) else tokens
        return bare.run(tokens, out.generated_tokens + sampled_not_kept(out.stop_reason))

    # Pass 1, timed without a profiler: the engine, then the bare model on the same work.
    first = helios_run(inputs[0])  # cold prompt: not counted
    bare_run(inputs[0], first)
    helios_total = bare_total = 0.0
    rows = []
    for inp in inputs[1:]:
        t = time.perf_counter()
        out = helios_run(inp)
        h = time.perf_counter() - t
        b = bare_run(inp, out).latency
        helios_total += h
        bare_total += b
        rows.append((out.evaluated_tokens, out.generated_tokens, h * 1000, b * 1000))
    print(f"{args.keys} keystrokes in {f.name}: engine {helios_total * 1000:.0f} ms, bare "
          f"{bare_total * 1000:.0f} ms, ratio {helios_total / bare_total:.3f} "
          f"(prompt {first.prompt_tokens} tokens)")
    print("per keystroke (evaluated, generated, engine ms, bare ms, extra ms):")
    for r in rows:
        print(f"  {r[0]:4d} {r[1]:4d} {r[2]:8.1f} {r[3]:8.1f} {r[2] - r[3]:7.1f}")
    extras = sorted(r[2] - r[3] for r in rows)
    print(f"median extra per keystroke: {extras[len(extras) // 2]:.1f} ms")

    bare.close()
    runner.run(engine.close())

    # Pass 2, the same keystrokes again on a new engine, under cProfile (which slows Python
    # code more than native code: read it for where, not for how much). Completions run on
    # the engine's worker thread and cProfile follows one thread, so the worker turns the
    # profiler on itself once `profiling` is set: threading.setprofile gives this hook to
    # the threads started from now on, and prof.enable() there replaces it.
    prof = cProfile.Profile()
    profiling = threading.Event()

    def start_profiling(*_: object) -> None:
        if profiling.is_set():
            prof.enable()

    threading.setprofile(start_profiling)
    engine = Engine(settings)
    runner.run(engine.load())  # starts its worker thread, with the hook
    threading.setprofile(None)  # type: ignore[arg-type]
    helios_run(inputs[0])  # the cold prompt: not profiled
    profiling.set()
    for inp in inputs[1:]:
        helios_run(inp)
    runner.run(engine.close())  # the worker is done: its profile is complete
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(args.top)
    print(s.getvalue())
    runner.close()


if __name__ == "__main__":
    main()
