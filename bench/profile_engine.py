"""Where Helios' time goes on a keystroke: `python -m bench.profile_engine`.

Types `--keys` characters of a standard-library file (within lines), running the engine's
worker-side completion directly on this thread under cProfile, then the bare
llama-cpp-python model on the very same prompt tokens and sampled counts. Prints both
totals and the engine's top functions, so the cost above the model is visible."""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
import types

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
    from helios_lsp.engine.model import LoadedModel
    from helios_lsp.engine.model_source import embedded_model_path, resolve_model
    from helios_lsp.engine.prompt import PromptBuilder
    from helios_lsp.settings import Settings

    model_path = embedded_model_path()
    settings = Settings(model=str(model_path), n_threads=args.threads, typeahead=False)
    engine = Engine(settings)
    # Load on this thread (the engine's own loading path, without its worker thread).
    engine._model = LoadedModel(resolve_model(settings.model), settings)
    m = engine._model
    engine._builder = PromptBuilder(m.encode, n_ctx=m.n_ctx, bos=m.bos, fim=m.fim,
                                    prefix_lines=settings.prefix_lines,
                                    suffix_lines=settings.suffix_lines,
                                    encode_continuation=m.encode_continuation)
    job = types.SimpleNamespace(is_cancelled=lambda: False)
    bare = Bare(model_path, args.threads, m.n_ctx)

    f = next(x for x in load_files() if x.basename == args.file)
    start = f.text.index(args.at) + len(args.at) // 2
    inputs = [CompletionInput(prefix=f.text[: start + k], suffix=f.text[start + k:],
                              filename=f.basename, max_tokens=64, temperature=0.0)
              for k in range(args.keys + 1)]

    def helios_run(inp):
        return engine._complete_in_worker(job, inp)

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

    # Pass 2, the same keystrokes again from a cold start, under cProfile (which slows
    # Python code more than native code: read it for where, not for how much).
    helios_run(CompletionInput(prefix="x = 1\n", filename="reset.py", max_tokens=4))
    helios_run(inputs[0])
    prof = cProfile.Profile()
    for inp in inputs[1:]:
        prof.enable()
        helios_run(inp)
        prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(args.top)
    print(s.getvalue())
    bare.close()
    m.close()


if __name__ == "__main__":
    main()
