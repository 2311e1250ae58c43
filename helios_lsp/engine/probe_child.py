"""The child process of the model probe (see model_probe.py): load, evaluate one token.

It exits 0 when llama.cpp survived; a crash, an abort or a non-zero exit is the answer.
Run as `python -m helios_lsp.engine.probe_child PATH N_THREADS`; nothing imports it.
"""

from __future__ import annotations

import contextlib
import sys

# Small: only loading and one evaluation are being tried, not the server's context.
_PROBE_N_CTX = 256


def main(argv: list[str]) -> int:
    """The child: load the file, evaluate one token, exit 0. A crash is the answer."""
    path, n_threads = argv[0], int(argv[1])
    import llama_cpp

    try:
        llm = llama_cpp.Llama(model_path=path, n_ctx=_PROBE_N_CTX, n_batch=_PROBE_N_CTX,
                              n_threads=n_threads, n_threads_batch=n_threads,
                              verbose=True)  # its last words land in the parent's log
        token = llm.token_bos()
        llm.eval([token if 0 <= token < llm.n_vocab() else 0])
    except Exception as exc:  # a clean refusal from llama-cpp-python
        print(f"load failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    with contextlib.suppress(Exception):
        llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
