"""Quality: at seeded cursor positions inside lines, the suggestion against the real text.

The hidden middle is the rest of the line up to the closing brackets/punctuation it ends
with (those stay after the cursor, as an editor's auto-closed brackets do). Helios gets
prefix and suffix; the peer gets the plain prompt (text before the cursor) and its answer
is cut at the first newline. Helios' answer is compared by its first line too."""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.stats import edit_similarity
from bench.workload import QualityCase


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def garbage_kind(suggestion: str, case: QualityCase) -> str | None:
    """Why a suggestion is garbage, or None.

    empty; whitespace-only; repeats the text after the cursor (what is already there:
    the rest of the line, or the next non-blank line); repeats the previous line (the
    completed line equals the nearest non-blank line above, when the real one does not)."""
    if suggestion == "":
        return "empty"
    s = suggestion.strip()
    if not s:
        return "whitespace"
    middle = case.middle.strip()
    line_rest, _, below = case.suffix.partition("\n")
    if line_rest.strip() and line_rest.strip().startswith(s) and not middle.startswith(s):
        return "repeats_suffix"
    next_line = next((ln.strip() for ln in below.split("\n") if ln.strip()), "")
    line_prefix = case.prefix.rsplit("\n", 1)[-1]
    completed = (line_prefix + suggestion + line_rest).strip()  # the line as it would read
    real = (line_prefix + case.middle + line_rest).strip()
    if next_line and completed == next_line and real != next_line:
        return "repeats_suffix"
    above = case.prefix.rsplit("\n", 1)[0] if "\n" in case.prefix else ""
    prev_line = next((ln.strip() for ln in reversed(above.split("\n")) if ln.strip()), "")
    if prev_line and completed == prev_line and real != prev_line:
        return "repeats_previous_line"
    return None


def score(suggestion: str, case: QualityCase) -> dict[str, Any]:
    line = first_line(suggestion)
    return {
        "suggestion": suggestion,
        "compared": line,
        "multi_line": "\n" in suggestion.strip("\n"),
        "exact": line.rstrip() == case.middle.rstrip(),
        # Lenient: also right if it re-typed the closing text that is already after the
        # cursor (a client could trim that overlap itself).
        "exact_with_line_end": line.rstrip() == (case.middle + case.suffix.split("\n", 1)[0]
                                                  ).rstrip(),
        "edit_similarity": round(edit_similarity(line.rstrip(), case.middle.rstrip()), 4),
        "garbage": garbage_kind(line, case),
    }


def run(ctx: Context, cases: list[QualityCase]) -> dict[str, Any]:
    cfg = ctx.config
    records: list[dict[str, Any]] = []
    helios = ctx.helios()
    contenders = [c for c in (helios, ctx.peer) if c is not None]
    ctx.resync()
    for qi, case in enumerate(cases):
        if qi % 10 == 0:
            ctx.log(f"quality {qi + 1}/{len(cases)}")
        where = {"case": qi, "file": case.file.name, "line": case.line + 1,
                 "expected": case.middle, "line_suffix": case.suffix.split("\n", 1)[0]}
        shift = qi % len(contenders) if contenders else 0
        for c in contenders[shift:] + contenders[:shift]:
            if c is ctx.peer:
                ans = c.complete(ctx.plain_prompt(case.prefix), cfg.max_tokens, ["\n"])
                name = "peer"
            else:
                ans = c.complete(case.prefix, case.suffix, case.file.basename, cfg.max_tokens,
                                 0.0, client_id=f"bench-quality-{qi}")
                name = "helios"
            records.append({**where, "contender": name, "via": c.name, "latency": ans.latency,
                            "error": ans.error, **score(ans.text, case)})
    return {"records": records}
