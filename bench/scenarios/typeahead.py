"""Type-ahead: the user types exactly what the last suggestion predicted.

At each start, Helios is asked once (the model runs); then the suggestion's characters
are typed one by one and Helios is asked after each. Every such answer should be the rest
of the suggestion, served without the model. Measured end to end over HTTP and LSP (and
in process, to show what the transport adds)."""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.workload import Segment


def run(ctx: Context, starts: list[Segment]) -> dict[str, Any]:
    cfg = ctx.config
    records: list[dict[str, Any]] = []
    contenders = [c for c in (ctx.http, ctx.lsp, ctx.engine) if c is not None]
    for ti, seg in enumerate(starts):
        fname = seg.file.basename
        prefix0, suffix = seg.prefix_at(0), seg.suffix
        ctx.log(f"type-ahead {ti + 1}/{len(starts)}: {seg.file.name}")
        shift = ti % len(contenders) if contenders else 0
        for c in contenders[shift:] + contenders[:shift]:
            uri = f"file:///bench/typeahead-{ti}/{fname}"
            cid = f"bench-typeahead-{ti}"
            if c.name == "helios-lsp":
                c.open(uri, prefix0 + suffix)
                first = c.complete(uri, prefix0)
            else:
                first = c.complete(prefix0, suffix, fname, cfg.max_tokens, 0.0, client_id=cid)
            suggestion = first.text
            records.append({"start": ti, "file": seg.file.name, "contender": c.name, "j": 0,
                            "latency": first.latency, "model_ran": first.model_ran,
                            "suggestion": suggestion, "text": first.text, "expected": None,
                            "hit": None})
            for j in range(1, min(len(suggestion), cfg.typeahead_chars + 1)):
                rest = suggestion[j:]
                if not rest.strip():
                    break
                prefix = prefix0 + suggestion[:j]
                if c.name == "helios-lsp":
                    ans = c.complete(uri, prefix, typed=suggestion[j - 1])
                else:
                    ans = c.complete(prefix, suffix, fname, cfg.max_tokens, 0.0, client_id=cid)
                records.append({"start": ti, "file": seg.file.name, "contender": c.name, "j": j,
                                "latency": ans.latency, "model_ran": ans.model_ran,
                                "suggestion": suggestion, "text": ans.text, "expected": rest,
                                "hit": ans.model_ran is False and ans.text == rest})
            if c.name == "helios-lsp":
                c.close_document(uri)
    return {"records": records}
