"""The contenders: Helios over HTTP, over LSP and in-process; llama-cpp-python's own
server (the peer); and a bare in-process llama-cpp-python model (the floor).

Every contender answers `complete(...)` with an `Answer`: the suggestion, the latency
measured by the client (request written to answer read), and what the contender did
(prompt tokens, evaluated tokens, generated tokens, whether the model ran), as far as
it tells us. Servers run as subprocesses of this one, each on its own free port, each
with the same model file and the same thread count; they are stopped by their own pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Answer:
    text: str
    latency: float  # seconds, client side
    prompt_tokens: int | None = None
    evaluated: int | None = None  # prompt tokens run through the model for this answer
    reused: int | None = None
    generated: int | None = None
    stop_reason: str | None = None
    model_ran: bool | None = None  # False: answered from a cache, without the model
    server_seconds: float | None = None
    cancelled: bool = False  # superseded / cancelled: no suggestion for this keystroke
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def sampled_not_kept(stop_reason: str | None) -> int:
    """1 when Helios sampled a last token it did not keep (an end token, or one it was
    unsure of): the bare model must sample it too for the work to match."""
    return 1 if stop_reason in ("eog", "unsure") else 0


class Unavailable(RuntimeError):
    """This contender cannot run here (a missing package, a server that will not start)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_of(pid: int) -> dict[str, int | None]:
    """Resident memory of a process in MiB: now (VmRSS) and at its peak (VmHWM)."""
    out: dict[str, int | None] = {"rss_mib": None, "peak_rss_mib": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mib"] = round(int(line.split()[1]) / 1024)
            elif line.startswith("VmHWM:"):
                out["peak_rss_mib"] = round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return out


def engine_busy(engine: dict[str, Any]) -> bool:
    """Whether a Helios engine snapshot (`/status`'s `engine`) shows work: a request, or
    warming in the background."""
    return bool(engine.get("busy") or engine.get("queued") or engine.get("in_flight"))


def bench_env(tmp: Path) -> dict[str, str]:
    """The environment for server subprocesses: no user HELIOS_* settings, an empty Ollama
    store (so Helios uses the embedded model), no rate limit (the bench is not a user)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    store = tmp / "ollama-empty"
    store.mkdir(parents=True, exist_ok=True)
    env["OLLAMA_MODELS"] = str(store)
    env["HELIOS_RATE_LIMIT"] = "10000"
    env["HELIOS_RATE_BURST"] = "100000"
    env["HELIOS_SHARE"] = "false"  # each contender holds its own model (bench.shared shares)
    # Levers switched off (or on) for one run, e.g. BENCH_HELIOS_QUICK_WINDOW_LINES=0: the
    # only Helios settings a run takes from its caller.
    for key, value in os.environ.items():
        if key.startswith("BENCH_HELIOS_"):
            env[key.removeprefix("BENCH_")] = value
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- a subprocess server --------------------------------------------------------------


class _Process:
    name = "process"

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path,
                 stdin: bool = False, stderr_lines: bool = False):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdin else self._log,
            stderr=subprocess.PIPE if stderr_lines else self._log,
        )
        self.lines: list[str] = []
        self._lines_cond = threading.Condition()
        if stderr_lines:
            threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._log.write(raw)
            with self._lines_cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._lines_cond.notify_all()

    def wait_lines(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lines_cond:
            while not predicate(self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lines_cond.wait(left)
            return True

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 15) -> str:
        try:
            self._log.flush()
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()
        with contextlib.suppress(Exception):
            self._log.close()


class _HttpClient:
    """A keep-alive HTTP/1.1 connection: what an editor plugin would hold open."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any, float]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        for attempt in (0, 1):
            try:
                started = time.perf_counter()
                self.conn.request(method, path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                raw = resp.read()
                elapsed = time.perf_counter() - started
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                if attempt:
                    raise
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload, elapsed

    def get_status(self, path: str, timeout: float = 2.0) -> int | None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            return status
        except (OSError, http.client.HTTPException):
            return None

    def close(self) -> None:
        self.conn.close()


def _wait_http(proc: _Process, client: _HttpClient, path: str, timeout: float,
               ok=lambda status: status == 200) -> float:
    """Seconds from process start until `path` answers `ok`; raises Unavailable."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_status(path, timeout=1.0)
        if status is not None and ok(status):
            return time.perf_counter() - proc.started_at
        if not proc.alive():
            raise Unavailable(f"{proc.name} exited with {proc.proc.returncode}: "
                              f"{proc.log_tail()}")
        time.sleep(0.01)
    raise Unavailable(f"{proc.name} did not answer {path} within {timeout:.0f} s")


# --- Helios over HTTP ------------------------------------------------------------------


_COUNTER_HEADERS = {
    "prompt_tokens": "x-helios-prompt-tokens",
    "evaluated": "x-helios-evaluated-tokens",
    "reused": "x-helios-reused-tokens",
    "generated": "x-helios-generated-tokens",
}


class HeliosHTTP:
    """`helios serve` in a subprocess; POST /complete like the VS Code extension."""

    name = "helios-http"

    def __init__(self, model: Path, threads: int, tmp: Path, client_id: str = "bench-http",
                 timeout: float = 180, env: dict[str, str] | None = None):
        """`env`: more environment (HELIOS_* settings of this one server)."""
        try:
            import http_api  # noqa: F401
            from http_api import serve  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"http_api is not importable ({exc})") from exc
        self.port = free_port()
        env = {**bench_env(tmp), **(env or {})}
        env["HELIOS_MODEL"] = str(model)
        env["HELIOS_N_THREADS"] = str(threads)
        self.process = _Process(
            [sys.executable, "-m", "helios_lsp", "serve", "--port", str(self.port)],
            env, tmp / f"{self.name}-{self.port}.log")
        self.process.name = self.name
        self.http = _HttpClient(self.port)
        self.client_id = client_id
        try:
            self.startup_seconds = _wait_http(self.process, self.http, "/health", timeout)
        except Unavailable:
            self.process.stop()
            raise
        self._last_stats = self._stats()

    @property
    def pid(self) -> int:
        return self.process.pid

    def status(self) -> dict[str, Any]:
        status, _, payload, _ = self.http.request("GET", "/status")
        return payload if status == 200 and isinstance(payload, dict) else {}

    def engine_snapshot(self) -> dict[str, Any]:
        return self.status().get("engine") or {}

    def _stats(self) -> dict[str, Any] | None:
        engine = self.status().get("engine")
        if isinstance(engine, dict) and isinstance(engine.get("stats"), dict):
            return {**engine["stats"], "last_job": engine.get("last_job") or {}}
        return None

    def prefetch(self, prefix: str, suffix: str, filename: str, max_tokens: int,
                 language: str = "python") -> None:
        """POST /prefetch, as the VS Code extension does when the cursor lands somewhere."""
        lines = prefix.split("\n")
        body = {
            "code": prefix, "suffix": suffix, "language": language, "filename": filename,
            "position": {"line": len(lines) - 1, "character": len(lines[-1])},
            "max_tokens": max_tokens, "temperature": 0.0,
        }
        self.http.request("POST", "/prefetch", body, {"X-Helios-Client": self.client_id})

    def complete(self, prefix: str, suffix: str, filename: str, max_tokens: int,
                 temperature: float = 0.0, client_id: str | None = None,
                 language: str = "python") -> Answer:
        lines = prefix.split("\n")
        body = {
            "code": prefix, "suffix": suffix, "language": language, "filename": filename,
            "position": {"line": len(lines) - 1, "character": len(lines[-1])},
            "max_tokens": max_tokens, "temperature": temperature,
        }
        status, headers, payload, elapsed = self.http.request(
            "POST", "/complete", body, {"X-Helios-Client": client_id or self.client_id})
        if status != 200 or not isinstance(payload, dict):
            return Answer("", elapsed, error=f"HTTP {status}: {str(payload)[:200]}")
        ans = Answer(str(payload.get("suggestion", "")), elapsed,
                     server_seconds=payload.get("processing_time"))
        ans.cancelled = headers.get("x-helios-superseded") == "1"
        if all(h in headers for h in _COUNTER_HEADERS.values()):
            for attr, header in _COUNTER_HEADERS.items():
                setattr(ans, attr, int(headers[header]))
            ans.stop_reason = headers.get("x-helios-stop-reason")
            ans.model_ran = headers.get("x-helios-typeahead") != "1" and (
                ans.evaluated + (ans.generated or 0) > 0)
            ans.extra["counters_from"] = "headers"
        else:
            self._counters_from_status(ans)
        return ans

    def _counters_from_status(self, ans: Answer) -> None:
        """Per-request counters from /status deltas (requests are sequential here)."""
        before, after = self._last_stats, self._stats()
        self._last_stats = after
        if before is None or after is None:
            return
        if after.get("requests", 0) - before.get("requests", 0) != 1:
            ans.extra["counters_from"] = "unknown: other requests ran in between"
            return
        job = after.get("last_job") or {}
        ran = after.get("prompt_tokens_evaluated", 0) != before.get("prompt_tokens_evaluated", 0) \
            or after.get("generated_tokens", 0) != before.get("generated_tokens", 0) \
            or after.get("completed", 0) - before.get("completed", 0) > \
            after.get("typeahead_hits", 0) - before.get("typeahead_hits", 0)
        hit = after.get("typeahead_hits", 0) > before.get("typeahead_hits", 0)
        ans.model_ran = ran and not hit
        ans.evaluated = after.get("prompt_tokens_evaluated", 0) - before.get(
            "prompt_tokens_evaluated", 0)
        ans.reused = after.get("prompt_tokens_reused", 0) - before.get("prompt_tokens_reused", 0)
        ans.generated = after.get("generated_tokens", 0) - before.get("generated_tokens", 0)
        if ans.model_ran:
            ans.prompt_tokens = job.get("prompt_tokens")
            ans.stop_reason = job.get("stop_reason")
        else:
            ans.prompt_tokens, ans.stop_reason = None, "typeahead" if hit else None
        ans.extra["counters_from"] = "status"

    def stats(self) -> dict[str, Any] | None:
        return self._stats()

    def resync_stats(self) -> dict[str, Any] | None:
        """Call after requests sent outside `complete` (they would count as the next one)."""
        self._last_stats = self._stats()
        return self._last_stats

    def close(self) -> None:
        self.http.close()
        self.process.stop()


# --- llama-cpp-python's own server (the peer) -----------------------------------------


_PREFIX_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit, remaining (\d+) prompt")
_FULL_CACHED = "full prompt already cached"
_TOTAL_TIME = "llama_perf_context_print:       total time"


def peer_missing_modules() -> list[str]:
    import importlib.util

    needed = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
    return [m for m in needed if importlib.util.find_spec(m) is None]


class Peer:
    """`python -m llama_cpp.server`, asked for completions with a plain prompt.

    Its verbose log says how many prompt tokens each request evaluated
    ("N prefix-match hit, remaining M prompt tokens to eval"); we read it."""

    name = "peer"

    def __init__(self, model: Path, threads: int, n_ctx: int, tmp: Path, timeout: float = 180):
        missing = peer_missing_modules()
        if missing:
            raise Unavailable("llama_cpp.server needs " + ", ".join(missing)
                              + " (pip install 'llama-cpp-python[server]' extras)")
        self.port = free_port()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--n_threads", str(threads), "--n_threads_batch", str(threads),
               "--n_ctx", str(n_ctx), "--port", str(self.port), "--host", "127.0.0.1",
               "--verbose", "True"]
        self.process = _Process(cmd, bench_env(tmp), tmp / f"peer-{self.port}.log",
                                stderr_lines=True)
        self.process.name = self.name
        self.http = _HttpClient(self.port)
        try:
            self.startup_seconds = _wait_http(self.process, self.http, "/v1/models", timeout)
        except Unavailable:
            self.process.stop()
            raise
        self._requests = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def complete(self, prompt: str, max_tokens: int, stop: list[str] | None = None,
                 temperature: float = 0.0) -> Answer:
        with self.process._lines_cond:
            mark = len(self.process.lines)
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature,
                "stop": stop or []}
        status, _, payload, elapsed = self.http.request("POST", "/v1/completions", body)
        if status != 200 or not isinstance(payload, dict):
            return Answer("", elapsed, error=f"HTTP {status}: {str(payload)[:200]}")
        choice = payload["choices"][0]
        usage = payload.get("usage") or {}
        ans = Answer(choice.get("text", ""), elapsed, prompt_tokens=usage.get("prompt_tokens"),
                     generated=usage.get("completion_tokens"),
                     stop_reason=choice.get("finish_reason"), model_ran=True)
        # The log lines of this request are written before its answer; wait for them.
        self.process.wait_lines(lambda lines: any(_TOTAL_TIME in ln for ln in lines[mark:]), 2.0)
        with self.process._lines_cond:
            lines = self.process.lines[mark:]
        ans.evaluated = ans.prompt_tokens  # no prefix hit: the whole prompt
        for line in lines:
            m = _PREFIX_HIT.search(line)
            if m:
                ans.reused, ans.evaluated = int(m.group(1)), int(m.group(2))
            elif _FULL_CACHED in line:
                ans.reused, ans.evaluated = ans.prompt_tokens, 0
        if ans.reused is None and ans.prompt_tokens is not None:
            ans.reused = ans.prompt_tokens - (ans.evaluated or 0)
        return ans

    def close(self) -> None:
        self.http.close()
        self.process.stop()


# --- llama.cpp's own server, asked directly --------------------------------------------


class LlamaServerDirect:
    """llama.cpp's `llama-server` (built by `make llama-server`), asked for completions with
    the peer's plain prompt on POST /completion with `cache_prompt`: the strongest thing a
    llama.cpp user runs today. A fresh server, one slot, the bench's threads and context;
    its host-memory prompt cache (`--cache-ram`) left at its default.

    Its answer says what it did: `timings.prompt_n` prompt tokens evaluated,
    `timings.cache_n` reused from the KV cache."""

    name = "llama-server"

    def __init__(self, model: Path, threads: int, n_ctx: int, tmp: Path, timeout: float = 180):
        from tests.llama_server import LlamaServer, LlamaServerError, find_binary, missing_reason

        try:
            binary = find_binary()
        except FileNotFoundError as exc:
            raise Unavailable(str(exc)) from exc
        if binary is None:
            raise Unavailable(missing_reason())
        self.server = LlamaServer(model, binary=binary, threads=threads, ctx_size=n_ctx,
                                  parallel=1, log_path=tmp / f"llama-server-{time.time_ns()}.log",
                                  env=bench_env(tmp))
        try:
            self.server.start(timeout)
        except LlamaServerError as exc:
            raise Unavailable(str(exc)) from exc
        self.startup_seconds = self.server.startup_seconds
        self.binary = binary
        self.http = _HttpClient(self.server.port)

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def complete(self, prompt: str, max_tokens: int, stop: list[str] | None = None,
                 temperature: float = 0.0) -> Answer:
        body = {"prompt": prompt, "n_predict": max_tokens, "temperature": temperature,
                "stop": stop or [], "cache_prompt": True}
        status, _, payload, elapsed = self.http.request("POST", "/completion", body)
        if status != 200 or not isinstance(payload, dict):
            return Answer("", elapsed, error=f"HTTP {status}: {str(payload)[:200]}")
        timings = payload.get("timings") or {}
        server_ms = (timings.get("prompt_ms") or 0) + (timings.get("predicted_ms") or 0)
        return Answer(str(payload.get("content", "")), elapsed,
                      prompt_tokens=payload.get("tokens_evaluated"),
                      evaluated=timings.get("prompt_n"), reused=timings.get("cache_n"),
                      generated=payload.get("tokens_predicted"),
                      stop_reason=payload.get("stop_type"), model_ran=True,
                      server_seconds=server_ms / 1000 if timings else None)

    def close(self) -> None:
        self.http.close()
        self.server.stop()


# --- the bare model, in process --------------------------------------------------------


class Bare:
    """`llama_cpp.Llama` as a script would use it: the floor for overhead.

    Also our tokenizer: to build the peer's plain prompt within the context, and to
    rebuild the very prompt Helios evaluated (same PromptBuilder, same tokenizer)."""

    name = "bare"

    def __init__(self, model: Path, threads: int, n_ctx: int):
        import llama_cpp

        self._llama_cpp = llama_cpp
        started = time.perf_counter()
        self.llm = llama_cpp.Llama(model_path=str(model), n_threads=threads,
                                   n_threads_batch=threads, n_ctx=n_ctx, verbose=False)
        self.load_seconds = time.perf_counter() - started
        self.n_ctx = n_ctx
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm._model.model)
        self._builder = None

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return self.llm.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False)

    def n_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8", "replace"), add_bos=True,
                                     special=False))

    # Helios' prompt, rebuilt with the engine's own PromptBuilder (read-only use).
    def helios_prompt(self, prefix: str, suffix: str, filename: str, max_tokens: int,
                      language: str = "python") -> list[int]:
        from helios_lsp.engine.languages import detect
        from helios_lsp.engine.prompt import PromptBuilder
        from helios_lsp.settings import Settings

        if self._builder is None:
            settings = Settings()
            meta = self.llm.metadata
            bos = None
            if meta.get("tokenizer.ggml.add_bos_token", "true") != "false":
                bos = self.llm.token_bos()
            fim_tokens = [self._single(t) for t in ("<fim_prefix>", "<|fim_prefix|>", "<PRE>")]
            if any(t is not None for t in fim_tokens):
                raise Unavailable("rebuilding a FIM prompt is not supported by the bench")
            self._builder = PromptBuilder(
                self.encode, n_ctx=self.n_ctx, bos=bos, fim=None,
                prefix_lines=settings.prefix_lines, suffix_lines=settings.suffix_lines)
        lang = detect(language, filename)
        max_tokens = min(max_tokens, max(1, self.n_ctx // 2))
        return self._builder.build(prefix, suffix, lang, filename, max_tokens).tokens

    def _single(self, text: str) -> int | None:
        ids = self.llm.tokenize(text.encode(), add_bos=False, special=True)
        return ids[0] if len(ids) == 1 else None

    def heals(self, tokens: list[int]) -> bool:
        """Whether Helios backs off the last prompt token (token healing), as in
        LoadedModel._heal_point for a model without FIM tokens."""
        if len(tokens) < 2:
            return False
        last = tokens[-1]
        return not (self._llama_cpp.llama_vocab_is_control(self._vocab, last)
                    or last == self.llm.token_bos())

    def run(self, tokens: list[int], n_sample: int) -> Answer:
        """Evaluate `tokens` (reusing the KV cache's common prefix, as generate does) and
        sample `n_sample` tokens greedily."""
        cached = list(self.llm._input_ids[: self.llm.n_tokens])
        common = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        reused = min(common, len(tokens) - 1)
        started = time.perf_counter()
        produced = []
        for token in self.llm.generate(tokens, temp=0.0, top_k=40, top_p=0.95):
            produced.append(token)
            if len(produced) >= max(1, n_sample):
                break
        elapsed = time.perf_counter() - started
        text = self.llm.detokenize(produced).decode("utf-8", "replace")
        return Answer(text, elapsed, prompt_tokens=len(tokens), evaluated=len(tokens) - reused,
                      reused=reused, generated=len(produced), model_ran=True)

    def complete_text(self, prompt: str, max_tokens: int, stop: list[str]) -> Answer:
        started = time.perf_counter()
        out = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0,
                                         stop=stop)
        elapsed = time.perf_counter() - started
        return Answer(out["choices"][0]["text"], elapsed, model_ran=True,
                      generated=out["usage"]["completion_tokens"],
                      prompt_tokens=out["usage"]["prompt_tokens"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()


# --- Helios' engine, in process --------------------------------------------------------


class HeliosEngine:
    """The engine without any transport: splits Helios' overhead into engine and HTTP."""

    name = "helios-engine"

    def __init__(self, model: Path, threads: int, client_id: str = "bench-engine"):
        from helios_lsp.engine import Engine
        from helios_lsp.settings import Settings

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.engine = Engine(Settings.from_env(model=str(model), n_threads=threads))
        started = time.perf_counter()
        self._call(self.engine.load())
        self.load_seconds = time.perf_counter() - started
        self.client_id = client_id

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def engine_snapshot(self) -> dict[str, Any]:
        return self.engine.snapshot()

    def complete(self, prefix: str, suffix: str, filename: str, max_tokens: int,
                 temperature: float = 0.0, client_id: str | None = None,
                 language: str = "python") -> Answer:
        from helios_lsp.engine import CompletionInput

        inp = CompletionInput(prefix=prefix, suffix=suffix, language=language,
                              filename=filename, max_tokens=max_tokens,
                              temperature=temperature)
        cid = client_id or self.client_id
        started = time.perf_counter()
        out = self._call(self.engine.complete(inp, client_id=cid, document=filename))
        elapsed = time.perf_counter() - started
        return Answer(out.text, elapsed,
                      prompt_tokens=None if out.from_typeahead else out.prompt_tokens,
                      evaluated=out.evaluated_tokens, reused=out.reused_tokens,
                      generated=out.generated_tokens, stop_reason=out.stop_reason,
                      model_ran=not out.from_typeahead, server_seconds=out.seconds)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self.engine.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# --- Helios over LSP -------------------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def lsp_position(prefix: str) -> dict[str, int]:
    """The LSP position (UTF-16 columns) of the end of `prefix`."""
    line = prefix.count("\n")
    last = prefix[prefix.rfind("\n") + 1:]
    return {"line": line, "character": utf16_len(last)}


def workspace_folder(path: Path) -> dict[str, str]:
    return {"uri": path.resolve().as_uri(), "name": path.name}


class HeliosLSP:
    """`helios lsp` on stdio: didOpen/didChange and textDocument/inlineCompletion, like an
    editor; counters from the `helios.status` command (not timed)."""

    name = "helios-lsp"

    def __init__(self, model: Path, threads: int, tmp: Path, max_tokens: int,
                 sidecar: bool = False, timeout: float = 180,
                 options: dict[str, Any] | None = None,
                 workspace_folders: list[Path] | None = None,
                 env: dict[str, str] | None = None, name: str | None = None):
        """`options`: more initializationOptions (e.g. {"context": false});
        `workspace_folders`: sent as `workspaceFolders` (None: no workspace, as before);
        `env`: more environment (HELIOS_* settings of this one server)."""
        import importlib.util

        from bench.lsp_client import LspClient

        if importlib.util.find_spec("helios_lsp.lsp.main") is None:
            raise Unavailable("helios_lsp.lsp.main is not there yet")
        if name is not None:
            self.name = name
        env = {**bench_env(tmp), **(env or {})}
        env["HELIOS_MODEL"] = str(model)
        env["HELIOS_N_THREADS"] = str(threads)
        self.http_port = free_port() if sidecar else None
        cmd = [sys.executable, "-m", "helios_lsp", "lsp"]
        cmd += ["--port", str(self.http_port)] if sidecar else ["--no-http"]
        self.process = _Process(cmd, env, tmp / f"{self.name}-{os.getpid()}-{time.time_ns()}.log",
                                stdin=True)
        self.process.name = self.name
        self.rpc = LspClient(self.process.proc.stdin, self.process.proc.stdout)
        init_options: dict[str, Any] = {"maxTokens": max_tokens, "temperature": 0.0}
        init_options["http"] = {"enabled": True, "port": self.http_port} if sidecar else False
        init_options.update(options or {})
        params: dict[str, Any] = {
            "processId": os.getpid(),
            "clientInfo": {"name": "helios-bench"},
            "rootUri": None,
            "capabilities": {
                "general": {"positionEncodings": ["utf-16"]},
                "textDocument": {
                    "synchronization": {"dynamicRegistration": False},
                    "inlineCompletion": {"dynamicRegistration": False},
                },
                "window": {"workDoneProgress": False},
            },
            "initializationOptions": init_options,
        }
        if workspace_folders is not None:
            folders = [workspace_folder(p) for p in workspace_folders]
            self.rpc.workspace_folders = folders
            params["workspaceFolders"] = folders
            params["rootUri"] = folders[0]["uri"] if folders else None
            params["capabilities"]["workspace"] = {"workspaceFolders": True}
        try:
            self.rpc.call("initialize", params, timeout=timeout)
            self.rpc.notify("initialized", {})
            self.startup_seconds = self._wait_ready(timeout)
        except Exception as exc:
            self.process.stop()
            if isinstance(exc, Unavailable):
                raise
            raise Unavailable(f"helios lsp did not start: {exc}: "
                              f"{self.process.log_tail()}") from exc
        self._versions: dict[str, int] = {}
        self._last_stats = self._stats()

    @property
    def pid(self) -> int:
        return self.process.pid

    def status(self) -> dict[str, Any]:
        result = self.rpc.call("workspace/executeCommand",
                               {"command": "helios.status", "arguments": []}, timeout=30)
        return result if isinstance(result, dict) else {}

    def engine_snapshot(self) -> dict[str, Any]:
        return self.status().get("engine") or {}

    def _wait_ready(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            engine = self.status().get("engine") or {}
            if engine.get("state") == "ready":
                return time.perf_counter() - self.process.started_at
            if engine.get("state") == "failed":
                raise Unavailable(f"helios lsp: model failed: {engine.get('load_error')}")
            if not self.process.alive():
                raise Unavailable(f"helios lsp exited: {self.process.log_tail()}")
            time.sleep(0.02)
        raise Unavailable("helios lsp: the model was not ready in time")

    def _stats(self) -> dict[str, Any] | None:
        engine = self.status().get("engine")
        if isinstance(engine, dict) and isinstance(engine.get("stats"), dict):
            return {**engine["stats"], "last_job": engine.get("last_job") or {}}
        return None

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self._versions[uri] = 1
        self.rpc.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": language, "version": 1, "text": text}})

    def close_document(self, uri: str) -> None:
        self._versions.pop(uri, None)
        self.rpc.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def change_workspace_folders(self, added: list[Path], removed: list[Path]) -> None:
        """workspace/didChangeWorkspaceFolders, as an editor sends when a folder is added."""
        add = [workspace_folder(p) for p in added]
        remove = [workspace_folder(p) for p in removed]
        uris = {f["uri"] for f in remove}
        self.rpc.workspace_folders = [f for f in self.rpc.workspace_folders or []
                                      if f["uri"] not in uris] + add
        self.rpc.notify("workspace/didChangeWorkspaceFolders",
                        {"event": {"added": add, "removed": remove}})

    def insert(self, uri: str, at_prefix: str, text: str) -> None:
        """didChange: `text` inserted where the document's first len(at_prefix) chars end."""
        self._versions[uri] += 1
        pos = lsp_position(at_prefix)
        self.rpc.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": self._versions[uri]},
            "contentChanges": [{"range": {"start": pos, "end": pos}, "text": text}],
        })

    def request(self, uri: str, prefix: str):
        """Send textDocument/inlineCompletion at the end of `prefix`: (id, pending)."""
        return self.rpc.send_request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri},
            "position": lsp_position(prefix),
            "context": {"triggerKind": 2},  # Automatic (LSP 3.18)
        })

    @staticmethod
    def text_of(result: Any) -> str:
        items = result.get("items", []) if isinstance(result, dict) else (result or [])
        if not items:
            return ""
        insert = items[0].get("insertText", "")
        return insert.get("value", "") if isinstance(insert, dict) else str(insert)

    def complete(self, uri: str, prefix: str, typed: str | None = None,
                 timeout: float = 600) -> Answer:
        """One keystroke closed-loop: optional didChange inserting `typed` at the end of
        prefix[:-len(typed)], then the request; latency from the first message sent."""
        started = time.perf_counter()
        if typed:
            self.insert(uri, prefix[: len(prefix) - len(typed)], typed)
        _, pending = self.request(uri, prefix)
        try:
            result = self.rpc.wait(pending, timeout)
        except Exception as exc:
            return Answer("", time.perf_counter() - started, error=str(exc))
        ans = Answer(self.text_of(result), (pending.received_at or time.perf_counter()) - started)
        self._counters(ans)
        return ans

    def _counters(self, ans: Answer) -> None:
        before, after = self._last_stats, self._stats()
        self._last_stats = after
        if before is None or after is None:
            return
        if after.get("requests", 0) - before.get("requests", 0) != 1:
            ans.extra["counters_from"] = "unknown: other requests ran in between"
            return
        hit = after.get("typeahead_hits", 0) > before.get("typeahead_hits", 0)
        ans.evaluated = after.get("prompt_tokens_evaluated", 0) - before.get(
            "prompt_tokens_evaluated", 0)
        ans.reused = after.get("prompt_tokens_reused", 0) - before.get("prompt_tokens_reused", 0)
        ans.generated = after.get("generated_tokens", 0) - before.get("generated_tokens", 0)
        ans.model_ran = not hit and (ans.evaluated + ans.generated > 0)
        job = after.get("last_job") or {}
        if ans.model_ran:
            ans.prompt_tokens, ans.stop_reason = job.get("prompt_tokens"), job.get("stop_reason")
        elif hit:
            ans.stop_reason = "typeahead"
        ans.extra["cancelled_total"] = after.get("cancelled", 0)
        ans.extra["counters_from"] = "helios.status"

    def resync_stats(self) -> dict[str, Any] | None:
        self._last_stats = self._stats()
        return self._last_stats

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.rpc.call("shutdown", None, timeout=15)
            self.rpc.notify("exit", None)
            self.process.proc.wait(10)
        self.process.stop()
