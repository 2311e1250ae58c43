"""A bare llama-cpp-python process for the start-up and memory measurement.

Run as `python -m bench._bare_child MODEL THREADS N_CTX PROMPT_FILE`: imports llama_cpp,
loads the model, prints "READY" with its own timings, runs one completion of the prompt,
prints its resident memory, then waits for stdin to close (so the parent can read it)."""

from __future__ import annotations

import json
import sys
import time

from bench.contenders import rss_of


def main() -> None:
    t0 = time.perf_counter()
    model, threads, n_ctx, prompt_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        sys.argv[4]
    import os

    import llama_cpp

    t1 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=model, n_threads=threads, n_threads_batch=threads,
                          n_ctx=n_ctx, verbose=False)
    t2 = time.perf_counter()
    print("READY " + json.dumps({"import_seconds": t1 - t0, "load_seconds": t2 - t1,
                                 **rss_of(os.getpid())}), flush=True)
    with open(prompt_file, encoding="utf-8") as f:
        prompt = f.read()
    llm.create_completion(prompt, max_tokens=16, temperature=0.0, stop=["\n"])
    print("DONE " + json.dumps(rss_of(os.getpid())), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
