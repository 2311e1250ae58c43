"""`python -m bench.soak`: hundreds of completions against one `helios serve`, watching its
resources: resident memory growth after warm-up, open files and threads, no 5xx.

    python -m bench.soak                  # 600 completions, 4 clients (a few minutes)
    python -m bench.soak --completions 60 # a smoke run

The traffic mixes what real clients do: completions at seeded positions of standard-library
files (so prompts differ), clients that hang up mid-request, malformed bodies, and health
probes. Results go to <out>/soak.json; the figures are quoted in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.contenders import ROOT, _Process, bench_env, free_port
from bench.workload import load_files


def wait_healthy(port: int, proc: _Process, timeout: float = 180) -> None:
    """Until GET /health answers 200; the server's log tail if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError("the server exited:\n" + proc.log_tail())
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not become healthy:\n" + proc.log_tail())


def _proc_figures(pid: int) -> dict[str, int]:
    """Resident memory (KiB), threads and open file descriptors of `pid`."""
    out = {"rss_kib": 0, "threads": 0, "fds": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss_kib"] = int(line.split()[1])
        elif line.startswith("Threads:"):
            out["threads"] = int(line.split()[1])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


class _Traffic:
    def __init__(self, port: int, seed: int):
        self.port = port
        self.files = load_files()
        self.rng = random.Random(seed)
        self.codes: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _body(self, rng: random.Random) -> dict[str, Any]:
        f = rng.choice(self.files)
        lines = f.text.split("\n")
        line = rng.randrange(12, min(len(lines), 200))
        col = rng.randrange(0, len(lines[line]) + 1)
        code = "\n".join([*lines[max(0, line - 12):line], lines[line][:col]])
        return {"code": code, "language": "python", "filename": f.basename,
                "position": {"line": line, "character": col},
                "suffix": lines[line][col:], "max_tokens": 8, "temperature": 0.2}

    def _count(self, what: str) -> None:
        with self.lock:
            self.codes[what] += 1

    def complete(self, rng: random.Random, client: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("POST", "/complete", json.dumps(self._body(rng)),
                         {"Content-Type": "application/json", "X-Helios-Client": client})
            reply = conn.getresponse()
            reply.read()
            self._count(str(reply.status))
        except OSError as exc:
            self._count(f"error:{type(exc).__name__}")
        finally:
            conn.close()

    def hang_up(self, rng: random.Random) -> None:
        """A client that sends a completion and goes away before the answer."""
        body = json.dumps(self._body(rng)).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"POST /complete HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            time.sleep(rng.uniform(0.01, 0.2))
        self._count("hang_up")

    def malformed(self, rng: random.Random) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            body = rng.choice(['{"code": ', '{"code": 5}', "[]", '{"code": "x", "max_tokens": -1}'])
            conn.request("POST", "/complete", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            reply.read()
            self._count(str(reply.status))
        finally:
            conn.close()


def run(completions: int, clients: int, threads: int, out: Path, seed: int) -> dict[str, Any]:
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="helios-soak-"))
    port = free_port()
    env = bench_env(tmp)
    env["HELIOS_N_THREADS"] = str(threads)
    server = _Process([sys.executable, "-m", "helios_lsp", "serve", "--port", str(port)],
                      env, tmp / "serve.log")
    traffic = _Traffic(port, seed)
    samples: list[dict[str, Any]] = []
    try:
        wait_healthy(port, server)

        done = 0
        done_lock = threading.Lock()

        def client_loop(index: int) -> None:
            nonlocal done
            rng = random.Random(seed * 100 + index)
            while True:
                with done_lock:
                    if done >= completions:
                        return
                    done += 1
                    n = done
                kind = rng.random()
                if kind < 0.05:
                    traffic.hang_up(rng)
                elif kind < 0.08:
                    traffic.malformed(rng)
                else:
                    traffic.complete(rng, f"soak-{index}")
                if n % 25 == 0:
                    samples.append({"after": n, "at": round(time.monotonic(), 2),
                                    **_proc_figures(server.pid)})

        started = time.monotonic()
        workers = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        seconds = time.monotonic() - started
        time.sleep(1.0)  # let hung-up requests finish
        final = _proc_figures(server.pid)
    finally:
        server.stop()

    warm = [s for s in samples if s["after"] >= min(100, completions // 4)]
    base = warm[0] if warm else samples[0]
    result = {
        "completions_sent": completions,
        "clients": clients,
        "seconds": round(seconds, 1),
        "status_codes": dict(sorted(traffic.codes.items())),
        "server_errors_5xx": sum(v for k, v in traffic.codes.items() if k.startswith("5")),
        "rss_mib_after_warmup": round(base["rss_kib"] / 1024, 1),
        "rss_mib_end": round(final["rss_kib"] / 1024, 1),
        "rss_growth_mib": round((final["rss_kib"] - base["rss_kib"]) / 1024, 1),
        "fds_range": [min(s["fds"] for s in samples), max(s["fds"] for s in samples)],
        "fds_end": final["fds"],
        "threads_range": [min(s["threads"] for s in samples),
                          max(s["threads"] for s in samples)],
        "threads_end": final["threads"],
        "samples": samples,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--completions", type=int, default=600)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    result = run(args.completions, args.clients, args.threads, args.out, args.seed)
    shown = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(shown, indent=2))
    ok = (result["server_errors_5xx"] == 0
          and result["fds_end"] <= result["fds_range"][0] + 4
          and result["threads_end"] <= result["threads_range"][0] + 4)
    print("soak: " + ("OK" if ok else "FAILED (5xx, or open files / threads grew)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
