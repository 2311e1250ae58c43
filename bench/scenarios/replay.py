"""Keystroke replay (and, from the same keystrokes, the overhead measurement).

Stretches of real files are typed again one character at a time. After every keystroke
each contender is asked for a completion at the cursor and the next keystroke waits for
all answers (closed loop: latency is never inflated by a queue). The order of the
contenders rotates with every keystroke so machine noise hits all alike.

- helios-http: POST /complete with the prefix and suffix, as the editor extension does;
- helios-lsp: didChange (one inserted character) + textDocument/inlineCompletion;
- helios-engine: the engine in this process (splits Helios' overhead: engine vs HTTP);
- peer: llama_cpp.server /v1/completions with the plain prompt (the text before the cursor),
  asked for one line (stop at newline): the naive client a Python user would write;
- llama-server: llama.cpp's own server, POST /completion with `cache_prompt` and the same
  plain prompt and stop as the peer (a fresh server, the same model and threads);
- bare: right after each helios-http answer that ran the model, the same prompt tokens
  (rebuilt with the engine's own PromptBuilder and checked against the count Helios
  reports) evaluated and the same number of tokens sampled by llama-cpp-python directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bench.contenders import Answer, sampled_not_kept
from bench.context import Context
from bench.workload import Segment


def _record(ans: Answer, **where: Any) -> dict[str, Any]:
    rec = {**where, **asdict(ans)}
    rec.pop("extra", None)
    return rec


def kind_of(k: int, char: str | None) -> str:
    if k == 0:
        return "first"  # the first request at a new place (cold prompt)
    return "newline" if char == "\n" else "within_line"


def run(ctx: Context, segments: list[Segment],
        after_segment: Callable[[int, Segment], None] | None = None) -> dict[str, Any]:
    cfg = ctx.config
    records: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    mirrored = ctx.http or ctx.engine
    names = [c.name for c in (ctx.http, ctx.lsp, ctx.engine, ctx.peer, ctx.llama_server)
             if c is not None]
    for si, seg in enumerate(segments):
        fname = seg.file.basename
        uri = f"file:///bench/replay-{si}/{fname}"
        ctx.log(f"replay {si + 1}/{len(segments)}: {seg.file.name}, {len(seg.typed)} keystrokes")
        if ctx.lsp is not None:
            ctx.lsp.open(uri, seg.prefix_at(0) + seg.suffix)
        ctx.resync()
        for k in range(len(seg.typed) + 1):
            prefix = seg.prefix_at(k)
            real = seg.file.text[len(prefix):]
            char = seg.typed[k - 1] if k else None
            where = {"segment": si, "file": seg.file.name, "k": k, "char": char,
                     "kind": kind_of(k, char)}
            shift = (k + si) % len(names)
            for name in names[shift:] + names[:shift]:
                if name == "helios-lsp":
                    ans = ctx.lsp.complete(uri, prefix, typed=char)
                elif name in ("peer", "llama-server"):
                    ctx.quiesce()
                    plain = ctx.peer if name == "peer" else ctx.llama_server
                    ans = plain.complete(ctx.plain_prompt(prefix), cfg.max_tokens, ["\n"])
                else:
                    contender = ctx.http if name == "helios-http" else ctx.engine
                    ans = contender.complete(prefix, seg.suffix, fname, cfg.max_tokens, 0.0)
                # A suggestion the user would have accepted: the file goes on with it.
                useful = bool(ans.text.strip()) and real.startswith(ans.text)
                records.append(_record(ans, contender=name, useful=useful, **where))
                if ctx.bare is not None and mirrored is not None and name == mirrored.name \
                        and ans.model_ran:
                    pairs.append(_mirror(ctx, ans, prefix, seg.suffix, fname, where))
        if ctx.lsp is not None:
            ctx.lsp.close_document(uri)
        if ctx.bare is not None and mirrored is not None:
            pairs += _repeats(ctx, si, seg, cfg.overhead_repeats)
        if after_segment is not None:
            after_segment(si, seg)
            ctx.resync()
    return {"records": records, "pairs": pairs, "mirrored": mirrored.name if mirrored else None}


def _repeats(ctx: Context, si: int, seg: Segment, n: int) -> list[dict[str, Any]]:
    """Controlled overhead pairs: the segment's last request asked again `n` times (a new
    client id each time, so type-ahead cannot answer), alternating Helios over HTTP, the
    engine in process and the bare model on the same tokens. Every one of them evaluates
    the last prompt token again and samples the same number of tokens."""
    from bench.scenarios.typeahead import start_in_last_line

    cfg = ctx.config
    fname = seg.file.basename
    at = start_in_last_line(seg)  # inside a line: a real suggestion, several tokens long
    prefix, suffix = at.prefix_at(0), at.suffix
    helios = [c for c in (ctx.http, ctx.engine) if c is not None]
    out = []
    for r in range(n):
        where = {"segment": si, "file": seg.file.name, "k": None, "char": None,
                 "kind": "repeat", "rep": r}
        answers = {}
        order = helios if r % 2 == 0 else helios[::-1]
        for c in order:
            answers[c.name] = c.complete(prefix, suffix, fname, cfg.max_tokens, 0.0,
                                         client_id=f"bench-repeat-{si}-{r}")
        main = answers[helios[0].name]
        if not main.model_ran:
            continue
        pair = _mirror(ctx, main, prefix, suffix, fname, where)
        engine = answers.get("helios-engine")
        if engine is not None and ctx.http is not None:
            pair["engine_latency"] = engine.latency
        out.append(pair)
    return out


def _mirror(ctx: Context, ans: Answer, prefix: str, suffix: str, fname: str,
            where: dict[str, Any]) -> dict[str, Any]:
    """The bare model on the very work Helios just did: the same prompt tokens (minus the
    healed last token), the same number of sampled tokens."""
    bare = ctx.bare
    ctx.quiesce()
    tokens = bare.helios_prompt(prefix, suffix, fname, ctx.config.max_tokens)
    evaluated_prompt = tokens[:-1] if bare.heals(tokens) else tokens
    n_sample = (ans.generated or 0) + sampled_not_kept(ans.stop_reason)
    b = bare.run(evaluated_prompt, n_sample)
    return {
        **where,
        "helios_latency": ans.latency,
        "helios_server_seconds": ans.server_seconds,
        "bare_latency": b.latency,
        "prompt_tokens": ans.prompt_tokens,
        "prompt_match": ans.prompt_tokens == len(tokens),
        "helios_evaluated": ans.evaluated,
        "bare_evaluated": b.evaluated,
        "sampled": n_sample,
        "ratio": ans.latency / b.latency if b.latency > 0 else None,
    }
