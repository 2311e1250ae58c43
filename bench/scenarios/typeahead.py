"""Type-ahead: the user types exactly what the last suggestion predicted.

At each start, Helios is asked once (the model runs); then the suggestion's characters
are typed one by one and Helios is asked after each. Every such answer should be the rest
of the suggestion, served without the model. Measured end to end over HTTP and LSP (and
in process, to show what the transport adds).

In a full run the starts are taken inside the last line of each replay segment, right
after that segment was typed, so the prompt is warm (as when a user types in a file)."""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.workload import Segment, start_column


def start_in_last_line(seg: Segment) -> Segment:
    """A start inside the segment's last line (see `start_column`)."""
    text = seg.file.text
    line_start = text.rfind("\n", 0, seg.end) + 1
    return Segment(seg.file, line_start + start_column(text[line_start:seg.end]), seg.end)


def probe(ctx: Context, ti: int, seg: Segment) -> list[dict[str, Any]]:
    cfg = ctx.config
    records: list[dict[str, Any]] = []
    contenders = [c for c in (ctx.http, ctx.lsp, ctx.engine) if c is not None]
    fname = seg.file.basename
    prefix0, suffix = seg.prefix_at(0), seg.suffix
    shift = ti % len(contenders) if contenders else 0
    ctx.resync()
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
    return records


def run(ctx: Context, starts: list[Segment]) -> dict[str, Any]:
    """Stand-alone: at the given starts (cold prompts)."""
    records: list[dict[str, Any]] = []
    for ti, seg in enumerate(starts):
        ctx.log(f"type-ahead {ti + 1}/{len(starts)}: {seg.file.name}")
        records += probe(ctx, ti, seg)
    return {"records": records}
