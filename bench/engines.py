"""`python -m bench.engines`: Helios on an engine server (issue "engine backends").

    python -m bench.engines                 # both scenarios (about 15 minutes on 2 cores)
    python -m bench.engines --quick         # a smoke run

1. overhead: Helios with HELIOS_ENGINE=llama-server against the same llama-server asked
   directly, on the same requests: the prompt Helios sends (built by Helios's own client for
   llama-server) and the same parameters, both warm, alternating which goes first.
   The ratio of medians is what Helios adds above the model (HTTP hop, cleaning, streaming).
2. concurrency: 1, 4 and 8 clients typing at once, each in its own file, closed loop:
   Helios with the local engine (one worker: requests queue) against Helios on
   `llama-server -np 4` (continuous batching). p50/p95 per keystroke and completions/s.

Results go to <out>/engines.json; the figures are quoted in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.contenders import ROOT, _Process, bench_env, free_port
from bench.soak import wait_healthy
from bench.workload import load_files


def _post(port: int, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
          timeout: float = 120) -> tuple[int, Any, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request("POST", path, json.dumps(body),
                     {"Content-Type": "application/json", **(headers or {})})
        reply = conn.getresponse()
        data = reply.read()
    finally:
        conn.close()
    return reply.status, json.loads(data) if data else None, time.perf_counter() - started


def _helios(tmp: Path, threads: int, **helios: str) -> tuple[_Process, int]:
    port = free_port()
    env = bench_env(tmp)
    env["HELIOS_N_THREADS"] = str(threads)
    env["HELIOS_TYPEAHEAD"] = "false"  # every keystroke asks the model: the engine is measured
    env.update({f"HELIOS_{k.upper()}": v for k, v in helios.items()})
    proc = _Process([sys.executable, "-m", "helios_lsp", "serve", "--port", str(port)], env,
                    tmp / f"helios-{port}.log")
    wait_healthy(port, proc)
    return proc, port


def _llama(model: Path, tmp: Path, threads: int, parallel: int):
    sys.path.insert(0, str(ROOT))
    from tests.llama_server import LlamaServer

    return LlamaServer(model, threads=threads, parallel=parallel, ctx_size=4096 * parallel,
                       log_path=tmp / f"llama-{parallel}.log").start()


def _keystrokes(n_files: int, keys: int) -> list[list[tuple[str, str, int, str]]]:
    """Per client: (prefix, suffix, line, filename) for `keys` keystrokes into a new line
    at the middle of its own standard-library file."""
    files = load_files()
    plans = []
    for i in range(n_files):
        f = files[i % len(files)]
        lines = f.text.split("\n")
        line = min(len(lines) - 1, 60 + 7 * i)
        above = "\n".join(lines[:line]) + "\n"
        indent = lines[line][: len(lines[line]) - len(lines[line].lstrip())]
        typed = indent + lines[line].strip()
        suffix = "\n" + "\n".join(lines[line + 1:])
        plans.append([(above + typed[:k], suffix, line, f.basename)
                      for k in range(len(indent) + 1, min(len(typed), len(indent) + keys) + 1)])
    return plans


def _body(prefix: str, suffix: str, line: int, filename: str) -> dict[str, Any]:
    return {"code": prefix, "suffix": suffix, "language": "python", "filename": filename,
            "position": {"line": line, "character": len(prefix) - prefix.rfind("\n") - 1},
            "max_tokens": 16, "temperature": 0.0}


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(p95 * 1000, 1)}


async def _connect_once(engine: Any) -> None:
    """Learn what the server serves (the prompt mode), then let the connection go."""
    try:
        await engine.connect()
    finally:
        await engine.close()


def overhead(model: Path, tmp: Path, threads: int, keys: int) -> dict[str, Any]:
    from helios_lsp.engine.languages import detect
    from helios_lsp.engine.remote.llama_server import LlamaServerEngine
    from helios_lsp.engine.types import CompletionInput
    from helios_lsp.settings import Settings

    llama = _llama(model, tmp, threads, 1)
    helios, port = _helios(tmp, threads, engine="llama-server", engine_url=llama.url,
                           min_token_prob="0")
    # Helios's own engine-server client builds the direct requests: the same prompt (and
    # healing) Helios sends, without Helios in between.
    direct_engine = LlamaServerEngine(Settings(engine="llama-server", engine_url=llama.url))
    asyncio.run(_connect_once(direct_engine))
    via, direct = [], []
    try:
        for client in _keystrokes(3, keys):
            for i, (prefix, suffix, line, name) in enumerate(client):
                inp = CompletionInput(prefix=prefix, suffix=suffix, language="python",
                                      filename=name, max_tokens=16, temperature=0.0,
                                      first_line=0)
                prompt, heal = direct_engine.prompt_for(inp, detect("python", name), 16)
                path, body = direct_engine.request(prompt, inp, 16, 0.0, heal)
                body = {**body, "stream": False}
                _post(llama.port, path, body)  # warm: both measured calls find it cached
                order = ("helios", "direct") if i % 2 else ("direct", "helios")
                for who in order:
                    if who == "helios":
                        status, _, seconds = _post(port, "/complete",
                                                   _body(prefix, suffix, line, name))
                        assert status == 200
                        via.append(seconds)
                    else:
                        status, _, seconds = _post(llama.port, path, body)
                        assert status == 200
                        direct.append(seconds)
    finally:
        helios.stop()
        llama.stop()
    result = {"helios_via_llama_server": _summary(via), "llama_server_direct": _summary(direct)}
    result["median_ratio"] = round(statistics.median(via) / statistics.median(direct), 3)
    return result


def _type_concurrently(port: int, plans: list[list[tuple[str, str, int, str]]]
                       ) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for prefix, suffix, line, name in plans[index]:
            status, _, seconds = _post(port, "/complete", _body(prefix, suffix, line, name),
                                       {"X-Helios-Client": f"bench-{index}"})
            with lock:
                (latencies if status == 200 else errors).append(
                    seconds if status == 200 else status)

    started = time.perf_counter()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(len(plans))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - started
    return {**_summary(latencies), "completions_per_s": round(len(latencies) / wall, 2),
            "errors": errors}


def concurrency(model: Path, tmp: Path, threads: int, keys: int,
                clients: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    local, port = _helios(tmp, threads, max_in_flight="64")
    try:
        for n in clients:
            out[f"local/{n}"] = _type_concurrently(port, _keystrokes(n, keys))
    finally:
        local.stop()
    llama = _llama(model, tmp, threads, 4)
    helios, port = _helios(tmp, threads, engine="llama-server", engine_url=llama.url,
                           max_in_flight="64")
    try:
        for n in clients:
            out[f"llama-server-np4/{n}"] = _type_concurrently(port, _keystrokes(n, keys))
    finally:
        helios.stop()
        llama.stop()
    for n in clients:
        a, b = out[f"local/{n}"], out[f"llama-server-np4/{n}"]
        out[f"p95_ratio/{n}"] = round(b["p95_ms"] / a["p95_ms"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--only", default="overhead,concurrency")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    from helios_lsp.engine.model_source import embedded_model_path

    model = embedded_model_path()
    assert model is not None, "the embedded model is not installed: run `make venv`"
    tmp = Path(tempfile.mkdtemp(prefix="helios-engines-"))
    keys = 3 if args.quick else 12
    clients = (1, 2) if args.quick else (1, 4, 8)
    result: dict[str, Any] = {"threads": args.threads, "keystrokes_per_client": keys}
    only = set(args.only.split(","))
    if "overhead" in only:
        result["overhead"] = overhead(model, tmp, args.threads, keys)
    if "concurrency" in only:
        result["concurrency"] = concurrency(model, tmp, args.threads, keys, clients)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engines.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
