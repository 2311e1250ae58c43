"""Jumps: the first keystroke after the cursor moves somewhere else.

The cursor jumps within a file and between files (see `workload.jump_plan`). At each new
place every contender in turn (order rotating per place) gets the same human pause (the
user looks at the code, 1 s by default) and then the first `jump_chars` characters of the
line are typed, closed loop. The first keystroke's latency is the figure: its prompt is
cold wherever the contender keeps no state for that place.

- helios-http: POST /prefetch when the cursor lands (as the VS Code extension does; off with
  `--no-prefetch`), then POST /complete with the prefix and the rest of the file as suffix;
- llama-server: POST /completion with `cache_prompt` and the peer's plain prompt (the
  text before the cursor), asked for one line.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from bench.contenders import Answer
from bench.context import Context
from bench.workload import Place


def _record(ans: Answer, **where: Any) -> dict[str, Any]:
    rec = {**where, **asdict(ans)}
    rec.pop("extra", None)
    return rec


def run(ctx: Context, plan: list[Place], pause: float, prefetch: bool = True
        ) -> dict[str, Any]:
    cfg = ctx.config
    contenders = [c for c in (ctx.http, ctx.llama_server) if c is not None]
    records: list[dict[str, Any]] = []
    for i, place in enumerate(plan):
        seg = place.segment
        keys = min(cfg.jump_chars, len(seg.typed))
        ctx.log(f"jumps {i + 1}/{len(plan)}: {place.kind} to {seg.file.name}:{place.line + 1}")
        shift = i % max(1, len(contenders))
        for c in contenders[shift:] + contenders[:shift]:
            if c is ctx.llama_server:
                ctx.quiesce()  # Helios's background work must not share its cores
            if c is ctx.http and prefetch:  # the editor says where the cursor landed
                c.prefetch(seg.prefix_at(0), seg.suffix, seg.file.basename, cfg.max_tokens)
            time.sleep(pause)  # the same pause for everyone, before the first keystroke
            for k in range(1, keys + 1):
                prefix = seg.prefix_at(k)
                if c is ctx.llama_server:
                    ans = c.complete(ctx.plain_prompt(prefix), cfg.max_tokens, ["\n"])
                else:
                    ans = c.complete(prefix, seg.suffix, seg.file.basename, cfg.max_tokens, 0.0)
                real = seg.file.text[len(prefix):]
                records.append(_record(
                    ans, contender=c.name, place=i, jump=place.kind, file=seg.file.name,
                    line=place.line, k=k, char=seg.typed[k - 1],
                    useful=bool(ans.text.strip()) and real.startswith(ans.text)))
    return {"records": records, "pause": pause, "places": len(plan), "prefetch": prefetch}
