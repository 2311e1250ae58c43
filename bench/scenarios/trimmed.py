"""Trimmed client: a script that sends only the last 6,000 characters before the cursor.

`code` in POST /complete is the text before the cursor, and real clients bound it. Helios
anchors its window of lines to the file's lines (`position.line` minus the line breaks in
`code`), so a cut that moves with every keystroke should not move the prompt: the KV cache
is reused. Issue 12's target: median per keystroke ≤ 0.2× the naive bare engine.

argparse.py of the running interpreter; a new line is opened inside a function body near
line 1500 and a short line is typed one key at a time (closed loop, order alternating):

- helios-http: POST /complete with `code` = the last 6,000 characters before the cursor,
  `suffix` = the next 2,000 characters, `position` = the real line and column. A new client
  id per keystroke, so type-ahead (kept per client) cannot answer: the engine is measured;
- bare: llama-cpp-python's `create_completion` on exactly the `code` sent, greedy, same
  `max_tokens`, stop at newline; it reuses the token prefix it shares with its previous
  call, as llama-cpp-python does by itself (that is the "naive" part).

The bare model is timed only once Helios is idle: the first request at the new line is
answered from Helios's quick window and the full window is evaluated after it in the
background; that work must not share the cores with the other contender's timed request.
Its tokens are reported (`background tokens`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.contenders import Answer
from bench.context import Context
from bench.stats import ratio, summary
from bench.workload import stdlib_dir

CUT = 6000  # characters before the cursor a client sends
SUFFIX_CHARS = 2000  # characters after it
NEAR_LINE = 1500  # 1-based line the new line is opened near
ANCHOR = "self._actions.remove(action)"  # _ActionsContainer._remove_action, line 1502 in 3.11
TYPED = "for option_str"  # 14 keystrokes: the line _remove_action would go on with
QUICK_KEYS = 3


class Place:
    """argparse.py with a new line opened after `line` (0-based), at its indentation."""

    def __init__(self, text: str):
        lines = text.split("\n")
        near = range(NEAR_LINE - 1, min(len(lines), NEAR_LINE + 200))
        # The anchor line if this Python has it near there; else the first statement inside
        # a function body from line 1500 on (not a comment, not opening a block).
        self.line = next((i for i in near if lines[i].strip() == ANCHOR), None)
        if self.line is None:
            self.line = next(i for i in near if lines[i].startswith(" " * 8)
                             and lines[i].strip() and not lines[i].strip().startswith("#")
                             and not lines[i].rstrip().endswith((":", ",", "(", "[", "{")))
        line = lines[self.line]
        self.indent = line[: len(line) - len(line.lstrip())]
        end = sum(len(ln) + 1 for ln in lines[: self.line]) + len(line)
        self.before = text[:end] + "\n" + self.indent  # Enter, and the editor's indentation
        self.after = text[end:]  # the rest of the file, from the anchor line's break on

    @property
    def cursor_line(self) -> int:
        return self.line + 1

    def prefix_at(self, k: int) -> str:
        return self.before + TYPED[:k]


def argparse_place() -> tuple[Place, str]:
    path = stdlib_dir() / "argparse.py"
    return Place(path.read_text(encoding="utf-8")), str(path)


def _helios(ctx: Context, code: str, suffix: str, line: int, client: str) -> Answer:
    http = ctx.http
    body = {"code": code, "suffix": suffix, "language": "python", "filename": "argparse.py",
            "position": {"line": line, "character": len(code) - code.rfind("\n") - 1},
            "max_tokens": ctx.config.max_tokens, "temperature": 0.0}
    status, headers, payload, elapsed = http.http.request(
        "POST", "/complete", body, {"X-Helios-Client": client})
    if status != 200 or not isinstance(payload, dict):
        return Answer("", elapsed, error=f"HTTP {status}: {str(payload)[:200]}")
    ans = Answer(str(payload.get("suggestion", "")), elapsed,
                 server_seconds=payload.get("processing_time"))
    ans.cancelled = headers.get("x-helios-superseded") == "1"
    http._counters_from_status(ans)  # /status read after the answer, not timed
    return ans


def _idle_stats(ctx: Context, timeout: float = 300) -> dict[str, Any]:
    """Helios's engine counters once it runs nothing (no job, none queued, no background
    warming)."""
    ctx.quiesce(ctx.http, timeout=timeout)
    return ctx.http.engine_snapshot().get("stats") or {}


def _bare(ctx: Context, code: str) -> Answer:
    """create_completion on the plain prompt; evaluated tokens by llama-cpp-python's own rule
    (Llama.generate: the longest common prefix with the cached tokens, minus one when the
    whole prompt matched)."""
    llm = ctx.bare.llm
    cached = list(llm._input_ids[: llm.n_tokens])
    ans = ctx.bare.complete_text(code, ctx.config.max_tokens, ["\n"])
    prompt = list(llm._input_ids[: ans.prompt_tokens])
    common = 0
    for a, b in zip(cached, prompt, strict=False):
        if a != b:
            break
        common += 1
    if common == len(prompt) == len(cached):
        ans.evaluated = 0
    else:
        ans.evaluated = len(prompt) - (common - 1 if common == len(prompt) else common)
    ans.reused = len(prompt) - ans.evaluated
    return ans


READINGS = ("file", "sent")  # position.line counted in the whole file, or in `code`


def run(ctx: Context, reading: str = "file") -> dict[str, Any]:
    """`reading`: how the client counts `position.line` (docs/api.md accepts both): the
    cursor's line in the whole file (as an editor reports it), or the line breaks in the
    text sent."""
    if reading not in READINGS:
        raise ValueError(f"trimmed: unknown reading {reading!r}")
    place, path = argparse_place()
    keys = QUICK_KEYS if ctx.config.quick else len(TYPED)
    names = [n for n, c in (("helios-http", ctx.http), ("bare", ctx.bare)) if c is not None]
    ctx.log(f"trimmed: {path}:{place.cursor_line + 1}, {keys} keystrokes, last {CUT} chars")
    background = _idle_stats(ctx).get("prefetch_tokens", 0) if ctx.http else 0
    ctx.resync()
    records: list[dict[str, Any]] = []
    suffix = place.after[:SUFFIX_CHARS]
    for k in range(keys + 1):  # k = 0: the new line just opened (a cold prompt for both)
        code = place.prefix_at(k)[-CUT:]
        for name in names if k % 2 else names[::-1]:
            rec: dict[str, Any] = {}
            if name == "helios-http":
                line = place.cursor_line if reading == "file" else code.count("\n")
                ans = _helios(ctx, code, suffix, line, f"bench-trimmed-{reading}-{k}")
                after = _idle_stats(ctx).get("prefetch_tokens", 0)
                rec["background_tokens"], background = after - background, after
            else:
                ans = _bare(ctx, code)
            rec = {"contender": name, "k": k, "kind": "keystroke" if k else "first",
                   "code_chars": len(code), **rec, **asdict(ans)}
            rec.pop("extra", None)
            records.append(rec)
    return {"records": records, "file": path, "line": place.cursor_line, "cut": CUT,
            "suffix_chars": SUFFIX_CHARS, "typed": TYPED[:keys], "indent": len(place.indent),
            "reading": reading}


# --- summary and report (called by bench.report) ---------------------------------------


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    records = result.get("records", [])
    out: dict[str, Any] = {k: result.get(k) for k in ("file", "line", "cut", "typed")}
    for name in dict.fromkeys(r["contender"] for r in records):
        rs = [r for r in records if r["contender"] == name]
        keys = [r for r in rs if r["kind"] == "keystroke" and not r.get("error")]
        out[name] = {
            "keystrokes": len(keys),
            "errors": sum(1 for r in rs if r.get("error")),
            "model_ran": sum(1 for r in keys if r.get("model_ran")),
            "latency": summary(r["latency"] for r in keys),
            "latency_first": summary(r["latency"] for r in rs if r["kind"] == "first"),
            "prompt_tokens": summary(r["prompt_tokens"] for r in keys
                                     if r.get("prompt_tokens") is not None),
            "evaluated": summary(r["evaluated"] for r in keys if r.get("evaluated") is not None),
            "evaluated_first": summary(r["evaluated"] for r in rs if r["kind"] == "first"
                                       and r.get("evaluated") is not None),
            "background_tokens": sum(r.get("background_tokens") or 0 for r in rs),
        }
    helios, bare = out.get("helios-http"), out.get("bare")
    if helios and bare:
        out["vs_bare"] = {stat: ratio(helios["latency"][stat], bare["latency"][stat])
                          for stat in ("median", "p95")}
    return out


def markdown(s: dict[str, Any]) -> list[str]:
    from bench.report import _fmt_ms, _fmt_ratio, _n, _table  # bench.report imports this module

    lines = ["### A client that sends only the last 6,000 characters", "",
             f"{s.get('file')}, a new line opened at line {(s.get('line') or 0) + 1}, "
             f"`{s.get('typed')}` typed one key at a time (closed loop). Each request "
             f"carries only the last {s.get('cut') or 0:,} characters before the cursor; Helios "
             "gets the real `position` (and a new client id per key: no type-ahead), the bare "
             "model the same characters as a plain prompt (llama-cpp-python reusing its common "
             "prefix).",
             ""]
    rows = []
    for name in ("helios-http", "bare"):
        r = s.get(name)
        if not r:
            continue
        vs = s.get("vs_bare", {}) if name == "helios-http" else {}
        rows.append([name, f"{r['keystrokes']} ({r['model_ran']} ran the model)",
                     _fmt_ms(r["latency"]["median"]), _fmt_ms(r["latency"]["p95"]),
                     _fmt_ratio(vs.get("median")), _fmt_ratio(vs.get("p95")),
                     _n(r["prompt_tokens"]["median"]), _n(r["evaluated"]["median"]),
                     _fmt_ms(r["latency_first"]["median"]), _n(r["evaluated_first"]["median"]),
                     r["background_tokens"] if name == "helios-http" else "–"])
    return lines + _table(["contender", "keystrokes", "median", "p95", "median / bare",
                           "p95 / bare", "prompt tokens (median)",
                           "evaluated per key (median)", "first (cold)", "evaluated first",
                           "background tokens"], rows)
