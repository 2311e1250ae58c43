"""Typing at a fixed speed: what an editor does when keystrokes come faster than answers.

The replay segments are typed again, one character every `interval` seconds whatever
the answers do. After each keystroke the editor asks for a completion at once:

- helios-lsp: didChange + inlineCompletion; a request still open when the next key comes
  is cancelled with `$/cancelRequest` (as VS Code and Neovim do);
- helios-http: each request on its own connection with `X-Helios-Client`, so the server
  supersedes the older one (it answers at once, empty, with `X-Helios-Superseded: 1`);
- peer: each request on its own connection; llama_cpp.server has no cancellation for
  plain completions, so requests queue behind each other.

Per keystroke: did its suggestion arrive before the next keystroke (it could be shown)?
Per segment: the latency of the LAST keystroke (the user stops typing and waits) and how
long the server stayed busy after it. Contenders take turns, one at a time.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

from bench.context import Context
from bench.workload import Segment


def _sleep_until(t: float) -> None:
    while True:
        left = t - time.perf_counter()
        if left <= 0:
            return
        time.sleep(min(left, 0.01))


class _HttpShot(threading.Thread):
    """One request on its own connection, timed."""

    def __init__(self, port: int, path: str, body: dict[str, Any], headers: dict[str, str]):
        super().__init__(daemon=True)
        self.port, self.path, self.body, self.headers = port, path, body, headers
        self.sent_at = 0.0
        self.received_at: float | None = None
        self.status: int | None = None
        self.payload: Any = None
        self.superseded = False
        self.error: str | None = None

    def run(self) -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            self.sent_at = time.perf_counter()
            conn.request("POST", self.path, body=json.dumps(self.body).encode(),
                         headers={"Content-Type": "application/json", **self.headers})
            resp = conn.getresponse()
            raw = resp.read()
            self.received_at = time.perf_counter()
            self.status = resp.status
            self.superseded = resp.getheader("X-Helios-Superseded") == "1"
            self.payload = json.loads(raw) if raw else None
            conn.close()
        except Exception as exc:  # recorded, never raised from a thread
            self.error = f"{type(exc).__name__}: {exc}"


def _http_segment(ctx: Context, name: str, si: int, seg: Segment,
                  interval: float) -> list[dict[str, Any]]:
    cfg = ctx.config
    fname = seg.file.basename
    shots: list[tuple[int, float, _HttpShot]] = []
    t0 = time.perf_counter()
    for k in range(1, len(seg.typed) + 1):
        key_at = t0 + (k - 1) * interval
        _sleep_until(key_at)
        prefix = seg.prefix_at(k)
        if name == "peer":
            shot = _HttpShot(ctx.peer.port, "/v1/completions", {
                "prompt": ctx.plain_prompt(prefix), "max_tokens": cfg.max_tokens,
                "temperature": 0.0, "stop": ["\n"]}, {})
        else:
            lines = prefix.split("\n")
            shot = _HttpShot(ctx.http.port, "/complete", {
                "code": prefix, "suffix": seg.suffix, "language": "python",
                "filename": fname, "max_tokens": cfg.max_tokens, "temperature": 0.0,
                "position": {"line": len(lines) - 1, "character": len(lines[-1])},
            }, {"X-Helios-Client": f"bench-paced-{si}"})
        pressed = time.perf_counter()
        shot.start()
        shots.append((k, pressed, shot))
    for _, _, shot in shots:
        shot.join(600)
    out = []
    for i, (k, key_at, shot) in enumerate(shots):
        next_key = shots[i + 1][1] if i + 1 < len(shots) else None
        text = ""
        if isinstance(shot.payload, dict):
            text = shot.payload.get("suggestion") if name != "peer" else \
                shot.payload["choices"][0]["text"]
        answered = shot.received_at is not None and shot.status == 200 and not shot.superseded
        out.append({"k": k, "key_at": key_at - t0, "latency": (shot.received_at - key_at)
                    if shot.received_at else None, "cancelled": shot.superseded,
                    "answered": answered, "error": shot.error or (
                        None if shot.status in (200, None) else f"HTTP {shot.status}"),
                    "in_time": answered and (next_key is None or shot.received_at <= next_key),
                    "text": text or ""})
    return out


def _lsp_segment(ctx: Context, si: int, seg: Segment, interval: float) -> list[dict[str, Any]]:
    lsp = ctx.lsp
    uri = f"file:///bench/paced-{si}/{seg.file.basename}"
    lsp.open(uri, seg.prefix_at(0) + seg.suffix)
    sent: list[tuple[int, float, int, Any]] = []
    cancelled: set[int] = set()
    t0 = time.perf_counter()
    for k in range(1, len(seg.typed) + 1):
        _sleep_until(t0 + (k - 1) * interval)
        key_at = time.perf_counter()
        if sent and not sent[-1][3].event.is_set():
            lsp.rpc.cancel(sent[-1][2])  # the editor drops the superseded request
            cancelled.add(sent[-1][0])
        lsp.insert(uri, seg.prefix_at(k - 1), seg.typed[k - 1])
        request_id, pending = lsp.request(uri, seg.prefix_at(k))
        sent.append((k, key_at, request_id, pending))
    for _, _, _, pending in sent:
        pending.event.wait(600)
    lsp.close_document(uri)
    out = []
    for i, (k, key_at, _, pending) in enumerate(sent):
        next_key = sent[i + 1][1] if i + 1 < len(sent) else None
        answered = pending.received_at is not None and pending.error is None \
            and k not in cancelled
        text = lsp.text_of(pending.result) if pending.error is None else ""
        out.append({"k": k, "key_at": key_at - t0,
                    "latency": (pending.received_at - key_at) if pending.received_at else None,
                    "cancelled": k in cancelled, "answered": answered,
                    "error": None if pending.error is None or k in cancelled
                    else str(pending.error.get("message")),
                    "in_time": answered and (next_key is None
                                             or pending.received_at <= next_key),
                    "text": text})
    return out


def _idle_after(ctx: Context, name: str, timeout: float = 600) -> None:
    """Wait until the contender has nothing queued (so the next one runs alone)."""
    if name == "helios-lsp":
        ctx.quiesce(ctx.lsp, timeout=timeout)
    elif name == "helios-http":
        ctx.quiesce(ctx.http, timeout=timeout)
    # the peer's requests were all joined: it is idle


def _engine_stats(ctx: Context, name: str) -> dict[str, Any]:
    if name == "helios-lsp":
        return dict((ctx.lsp.status().get("engine") or {}).get("stats") or {})
    if name == "helios-http":
        return dict((ctx.http.status().get("engine") or {}).get("stats") or {})
    return {}


def segment(ctx: Context, si: int, seg: Segment, interval: float) -> dict[str, Any]:
    """Type one segment at a fixed speed with every contender in turn."""
    names = [c.name for c in (ctx.http, ctx.lsp, ctx.peer) if c is not None]
    records: list[dict[str, Any]] = []
    segment_records: list[dict[str, Any]] = []
    ctx.log(f"paced typing {si + 1}: {seg.file.name}, {len(seg.typed)} keys at "
            f"{interval * 1000:.0f} ms")
    shift = si % len(names) if names else 0
    for name in names[shift:] + names[:shift]:
        before = _engine_stats(ctx, name)
        t0 = time.perf_counter()
        if name == "helios-lsp":
            rows = _lsp_segment(ctx, si, seg, interval)
        else:
            rows = _http_segment(ctx, name, si, seg, interval)
        _idle_after(ctx, name)
        busy_until = time.perf_counter() - t0
        after = _engine_stats(ctx, name)
        for row in rows:
            records.append({"segment": si, "contender": name, **row})
        ctx.resync()
        last = rows[-1] if rows else {}
        segment_records.append({
            "segment": si, "contender": name, "keys": len(rows),
            "last_latency": last.get("latency"),
            "busy_after_last_key": busy_until - (last.get("key_at") or 0.0),
            "engine_delta": {k: after.get(k, 0) - before.get(k, 0)
                             for k in ("requests", "completed", "cancelled", "dropped",
                                       "superseded", "typeahead_hits")} if after else None,
        })
    return {"records": records, "segments": segment_records}


def merge(interval: float, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The scenario's result from the results of `segment`."""
    return {"interval": interval,
            "records": [r for part in parts for r in part["records"]],
            "segments": [r for part in parts for r in part["segments"]]}


def run(ctx: Context, segments: list[Segment], interval: float) -> dict[str, Any]:
    """Stand-alone: every segment in turn (cold prompts at each start)."""
    return merge(interval, [segment(ctx, si, seg, interval) for si, seg in enumerate(segments)])
