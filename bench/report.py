"""From raw records to summaries, target checks (PASS/FAIL with the ratios) and markdown."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.stats import ratio, summary

SEC = 1000.0  # seconds -> milliseconds in the tables

# --- summaries ----------------------------------------------------------------------------


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def summarize_replay(replay: dict[str, Any]) -> dict[str, Any]:
    records = replay.get("records", [])
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["contender"] for r in records):
        rs = [r for r in records if r["contender"] == name and not r.get("error")]
        keys = [r for r in rs if r["kind"] != "first"]
        within = [r for r in keys if r["kind"] == "within_line"]

        def reeval(r: dict[str, Any]) -> float | None:
            if r.get("model_ran") is False:
                return 0.0
            if r.get("evaluated") is None or not r.get("prompt_tokens"):
                return None
            return r["evaluated"] / r["prompt_tokens"]

        shares = [s for s in map(reeval, within) if s is not None]
        out[name] = {
            "keystrokes": len(keys),
            "errors": sum(1 for r in records if r["contender"] == name and r.get("error")),
            "latency": summary(r["latency"] for r in keys),
            "latency_within_line": summary(r["latency"] for r in within),
            "latency_newline": summary(r["latency"] for r in keys if r["kind"] == "newline"),
            "latency_first": summary(r["latency"] for r in rs if r["kind"] == "first"),
            "prompt_tokens": summary(r["prompt_tokens"] for r in keys
                                     if r.get("prompt_tokens") is not None),
            "evaluated": summary(r["evaluated"] for r in keys if r.get("evaluated") is not None),
            "evaluated_within_line": summary(r["evaluated"] for r in within
                                             if r.get("evaluated") is not None),
            "reeval_share_within_line": summary(shares) | {
                "aggregate": (sum(r["evaluated"] or 0 for r in within if r.get("model_ran"))
                              / max(1, sum(r["prompt_tokens"] or 0 for r in within
                                           if r.get("model_ran"))))
                if shares else None},
            "generated": summary(r["generated"] for r in keys if r.get("generated") is not None),
            "model_free_share": _share([r.get("model_ran") is False for r in keys
                                        if r.get("model_ran") is not None]),
            "counted": sum(1 for r in keys if r.get("model_ran") is not None),
            "empty_share": _share([not r["text"].strip() for r in keys]),
            "useful_share": _share([bool(r.get("useful")) for r in keys]),
        }
    for base in ("peer", "llama-server"):
        ref = out.get(base)
        for name, s in out.items():
            if ref and name != base:
                s[f"vs_{base.replace('-', '_')}"] = {
                    "median": ratio(s["latency"]["median"], ref["latency"]["median"]),
                    "p95": ratio(s["latency"]["p95"], ref["latency"]["p95"]),
                    "first_median": ratio(s["latency_first"]["median"],
                                          ref["latency_first"]["median"]),
                }
    return out


JUMP_KINDS = ("within", "file-new", "file-return")


def summarize_jumps(jumps: dict[str, Any]) -> dict[str, Any]:
    """Per contender: the first keystroke after each jump (the "start" place excluded: it
    follows no jump), by kind of jump, and the keystrokes typed after it."""
    records = jumps.get("records", [])
    out: dict[str, Any] = {"pause": jumps.get("pause"), "places": jumps.get("places")}
    for name in dict.fromkeys(r["contender"] for r in records):
        rs = [r for r in records if r["contender"] == name and not r.get("error")]
        first = [r for r in rs if r["k"] == 1 and r["jump"] != "start"]
        out[name] = {
            "jumps": len(first),
            "errors": sum(1 for r in records if r["contender"] == name and r.get("error")),
            "first_key": summary(r["latency"] for r in first),
            "by_kind": {kind: summary(r["latency"] for r in first if r["jump"] == kind)
                        for kind in JUMP_KINDS},
            "start": summary(r["latency"] for r in rs if r["k"] == 1 and r["jump"] == "start"),
            "typing": summary(r["latency"] for r in rs if r["k"] > 1),
            "evaluated_first_key": summary(r["evaluated"] for r in first
                                           if r.get("evaluated") is not None),
            "useful_share": _share([bool(r.get("useful")) for r in first]),
        }
    ref = out.get("llama-server")
    for name, s in out.items():
        if isinstance(s, dict) and ref and name != "llama-server":
            s["vs_llama_server"] = {
                stat: ratio(s["first_key"][stat], ref["first_key"][stat])
                for stat in ("median", "p95")}
    return out


def _matched(p: dict[str, Any]) -> bool:
    return bool(p["prompt_match"]) and p["helios_evaluated"] == p["bare_evaluated"]


def _pair_group(group: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pairs": len(group),
        "work_matched": _share([_matched(p) for p in group]),
        "helios": summary(p["helios_latency"] for p in group),
        "bare": summary(p["bare_latency"] for p in group),
        "ratio": summary(p["ratio"] for p in group if p["ratio"] is not None),
        "evaluated": summary(p["helios_evaluated"] for p in group),
        "sampled": summary(p["sampled"] for p in group),
    }
    if group:
        out["ratio_of_medians"] = ratio(out["helios"]["median"], out["bare"]["median"])
        out["extra_ms"] = summary((p["helios_latency"] - p["bare_latency"]) * SEC
                                  for p in group)
    return out


def summarize_overhead(replay: dict[str, Any]) -> dict[str, Any]:
    pairs = replay.get("pairs", [])
    out: dict[str, Any] = {"mirrored": replay.get("mirrored")}
    typing = [p for p in pairs if p["kind"] in ("within_line", "newline")]
    repeats = [p for p in pairs if p["kind"] == "repeat"]
    out["keystrokes"] = _pair_group(typing)
    out["repeat"] = _pair_group(repeats)
    out["first"] = _pair_group([p for p in pairs if p["kind"] == "first"])
    # The target: every keystroke-sized request whose work matched the bare model's.
    out["target_pairs"] = _pair_group([p for p in typing + repeats if _matched(p)])
    with_engine = [p for p in repeats if p.get("engine_latency") is not None]
    if with_engine:
        out["repeat_engine"] = {
            "pairs": len(with_engine),
            "engine": summary(p["engine_latency"] for p in with_engine),
            "engine_vs_bare": summary(p["engine_latency"] / p["bare_latency"]
                                      for p in with_engine),
            "http_minus_engine_ms": summary((p["helios_latency"] - p["engine_latency"]) * SEC
                                            for p in with_engine),
        }
    # The engine alone on the same keystrokes, when it ran too: transport vs engine costs.
    recs = replay.get("records", [])
    by_key: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for r in recs:
        by_key.setdefault((r["segment"], r["k"]), {})[r["contender"]] = r
    engine_http = [(v["helios-engine"], v["helios-http"]) for v in by_key.values()
                   if "helios-engine" in v and "helios-http" in v and v["helios-http"]["kind"]
                   != "first" and v["helios-engine"].get("model_ran")
                   and v["helios-http"].get("model_ran")]
    if engine_http:
        out["engine_vs_http"] = {
            "pairs": len(engine_http),
            "engine": summary(e["latency"] for e, _ in engine_http),
            "http": summary(h["latency"] for _, h in engine_http),
            "http_minus_engine_ms": summary((h["latency"] - e["latency"]) * SEC
                                            for e, h in engine_http),
            "http_minus_server_ms": summary((h["latency"] - h["server_seconds"]) * SEC
                                            for _, h in engine_http
                                            if h.get("server_seconds") is not None),
        }
    return out


def summarize_paced(pc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"interval": pc.get("interval")}
    records, segs = pc.get("records", []), pc.get("segments", [])
    for name in dict.fromkeys(r["contender"] for r in records):
        rs = [r for r in records if r["contender"] == name]
        ss = [s for s in segs if s["contender"] == name]
        deltas: Counter[str] = Counter()
        for s in ss:
            deltas.update(s.get("engine_delta") or {})
        out[name] = {
            "keystrokes": len(rs),
            "in_time": _share([bool(r["in_time"]) for r in rs]),
            "cancelled": _share([bool(r["cancelled"]) for r in rs]),
            "errors": sum(1 for r in rs if r.get("error")),
            "latency_answered": summary(r["latency"] for r in rs
                                        if r["answered"] and r["latency"] is not None),
            "last_latency": summary(s["last_latency"] for s in ss),
            "busy_after_last_key": summary(s["busy_after_last_key"] for s in ss),
            "engine": dict(deltas),
        }
    return out


def summarize_typeahead(ta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    records = ta.get("records", [])
    for name in dict.fromkeys(r["contender"] for r in records):
        rs = [r for r in records if r["contender"] == name and r["j"] > 0]
        hits = [r for r in rs if r["hit"]]
        out[name] = {
            "starts": len({r["start"] for r in records if r["contender"] == name}),
            "starts_with_suggestion": len({r["start"] for r in records if r["contender"] == name
                                           and r["j"] == 0 and r["suggestion"].strip()}),
            "typed": len(rs),
            "hits": len(hits),
            "hit_share": _share([bool(r["hit"]) for r in rs]),
            "latency_hits": summary(r["latency"] for r in hits),
            "latency_first": summary(r["latency"] for r in records
                                     if r["contender"] == name and r["j"] == 0),
        }
    return out


def summarize_quality(q: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    records = q.get("records", [])
    for name in dict.fromkeys(r["contender"] for r in records):
        rs = [r for r in records if r["contender"] == name]
        kinds = Counter(r["garbage"] for r in rs if r["garbage"])
        out[name] = {
            "via": rs[0]["via"] if rs else None,
            "cases": len(rs),
            "exact": _share([r["exact"] for r in rs]),
            "exact_or_with_line_end": _share([r["exact"] or r.get("exact_with_line_end", False)
                                              for r in rs]),
            "edit_similarity": summary(r["edit_similarity"] for r in rs)["mean"],
            "garbage": _share([bool(r["garbage"]) for r in rs]),
            "garbage_kinds": dict(kinds),
            "multi_line": sum(1 for r in rs if r["multi_line"]),
            "latency": summary(r["latency"] for r in rs),
            "errors": sum(1 for r in rs if r.get("error")),
        }
    return out


def summarize_startup(st: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    records = st.get("records", [])
    for name in dict.fromkeys(r["contender"] for r in records):
        rs = [r for r in records if r["contender"] == name and "unavailable" not in r]
        missing = [r["unavailable"] for r in records
                   if r["contender"] == name and "unavailable" in r]
        out[name] = {
            "runs": len(rs),
            "unavailable": missing[0] if missing and not rs else None,
            "startup_seconds": summary(r["startup_seconds"] for r in rs),
            "rss_loaded_mib": summary(r.get("rss_loaded_mib") for r in rs),
            "rss_mib": summary(r.get("rss_mib") for r in rs),
            "peak_rss_mib": summary(r.get("peak_rss_mib") for r in rs),
        }
        if name == "bare":
            out[name]["load_seconds"] = summary(r["load_seconds"] for r in rs)
    bare = out.get("bare")
    for name, s in out.items():
        if bare and name != "bare" and s["runs"]:
            s["vs_bare"] = {
                "startup": ratio(s["startup_seconds"]["median"],
                                 bare["startup_seconds"]["median"]),
                "rss": ratio(s["rss_mib"]["median"], bare["rss_mib"]["median"]),
            }
    return out


# --- targets --------------------------------------------------------------------------------


def _target(tid: str, what: str, measured: float | None, limit: float, op: str,
            shown: str) -> dict[str, Any]:
    if measured is None:
        status = "N/A"
    elif op == "<=":
        status = "PASS" if measured <= limit else "FAIL"
    else:
        status = "PASS" if measured >= limit else "FAIL"
    return {"id": tid, "target": what, "measured": measured, "limit": limit, "op": op,
            "shown": shown, "status": status}


def _fmt_ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _fmt_pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def _fmt_ms(x: float | None) -> str:
    if x is None:
        return "–"
    ms = x * SEC
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.0f} ms"


def check_targets(s: dict[str, Any]) -> list[dict[str, Any]]:
    t: list[dict[str, Any]] = []
    ov = s.get("overhead", {}).get("target_pairs", {})
    r = ov.get("ratio", {}).get("median") if ov.get("pairs") else None
    t.append(_target("1", f"Overhead: {s.get('overhead', {}).get('mirrored') or 'helios'} "
                     "/ bare llama-cpp-python on the same prompt tokens and sampled tokens "
                     f"(median of per-request ratios, {ov.get('pairs', 0)} keystroke-sized "
                     "requests with matched work)", r, 1.05, "<=", _fmt_ratio(r)))
    replay = s.get("replay", {})
    for name in ("helios-http", "helios-lsp"):
        vs = replay.get(name, {}).get("vs_peer", {})
        for stat in ("median", "p95"):
            m = vs.get(stat)
            t.append(_target(f"2-{name}-{stat}",
                             f"Keystroke replay {name}: {stat} latency / peer's", m, 0.5, "<=",
                             _fmt_ratio(m)))
    for name in ("helios-http", "helios-lsp"):
        share = replay.get(name, {}).get("reeval_share_within_line", {})
        m = share.get("p95")
        t.append(_target(f"2-{name}-reeval",
                         f"Keystroke replay {name}: prompt re-evaluated per keystroke within a "
                         "line (p95)", m, 0.05, "<=", _fmt_pct(m, 2)))
    ta = s.get("typeahead", {})
    for name in ("helios-http", "helios-lsp"):
        lat = ta.get(name, {}).get("latency_hits", {})
        m = lat.get("p95")
        hits = ta.get(name, {}).get("hits", 0)
        t.append(_target(f"3-{name}", f"Type-ahead answer {name}, end to end (p95 of "
                         f"{hits} answers)", m, 0.005, "<=", _fmt_ms(m)))
    q = s.get("quality", {})
    helios, peer = q.get("helios"), q.get("peer")
    if helios and peer:
        diff = helios["exact"] - peer["exact"]
        t.append(_target("4-exact", "Quality: Helios exact match − peer's", diff, 0.0, ">=",
                         f"{_fmt_pct(helios['exact'])} vs {_fmt_pct(peer['exact'])}"))
    else:
        t.append(_target("4-exact", "Quality: Helios exact match ≥ peer's", None, 0.0, ">=",
                         "–"))
    g = helios["garbage"] if helios else None
    t.append(_target("4-garbage", "Quality: Helios garbage share", g, 0.0, "<=", _fmt_pct(g)))
    # Against llama.cpp's own server (issue 12): N/A when it was not built.
    vs = replay.get("helios-http", {}).get("vs_llama_server", {})
    for stat, limit in (("median", 0.1), ("p95", 0.5)):
        m = vs.get(stat)
        t.append(_target(f"5-llama-server-{stat}", f"Keystroke replay helios-http: {stat} "
                         "latency / llama-server's", m, limit, "<=", _fmt_ratio(m)))
    if "trimmed" in s:  # issue 12: a client sending the last 6,000 characters
        m = s["trimmed"].get("vs_bare", {}).get("median")
        t.append(_target("6-trimmed", "Client sending the last 6,000 characters: helios-http "
                         "median per keystroke / naive bare engine's", m, 0.2, "<=",
                         _fmt_ratio(m)))
    if "cpu" in s:  # issue 18: CPU per keystroke, background included
        from bench.scenarios import cpu

        t += cpu.check_targets(s["cpu"], _target)
    if "crossfile" in s:  # issue 17: context from other files
        from bench.scenarios import crossfile

        t += crossfile.check_targets(s["crossfile"], _target)
    return t


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    if "replay" in results:
        s["replay"] = summarize_replay(results["replay"])
        s["overhead"] = summarize_overhead(results["replay"])
    if "paced" in results:
        s["paced"] = summarize_paced(results["paced"])
    if "typeahead" in results:
        s["typeahead"] = summarize_typeahead(results["typeahead"])
    if "jumps" in results:
        s["jumps"] = summarize_jumps(results["jumps"])
    if "trimmed" in results:
        from bench.scenarios import trimmed

        s["trimmed"] = trimmed.summarize(results["trimmed"])
    if "cpu" in results:
        from bench.scenarios import cpu

        s["cpu"] = cpu.summarize(results["cpu"])
    if "quality" in results:
        s["quality"] = summarize_quality(results["quality"])
    if "startup" in results:
        s["startup"] = summarize_startup(results["startup"])
    if "crossfile" in results:
        from bench.scenarios import crossfile

        s["crossfile"] = crossfile.summarize(results["crossfile"],
                                             results["crossfile"].get("index"))
    return s


# --- markdown -----------------------------------------------------------------------------


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    return [_row(head), _row(["---"] * len(head)), *(_row(r) for r in rows), ""]


def _n(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    meta, s, targets = report["meta"], report["summary"], report["targets"]
    m = meta["machine"]
    lines = [
        f"Run {meta['started_at']} · {'quick (smoke)' if meta['config']['quick'] else 'full'}"
        f" · {meta['seconds']:.0f} s · seed {meta['config']['seed']}",
        "",
        f"- Command: `{meta['command']}`",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; "
        f"load average at start {m['load_average_at_start']}, at end "
        f"{meta.get('load_average_at_end')}",
        f"- Python {m['python']}, llama-cpp-python {m['llama_cpp_python']}, helios "
        f"{m['helios']} (commit {m['commit']})",
        f"- Model: {meta['model']} · threads {meta['config']['threads']} for every contender ·"
        f" n_ctx {meta['config']['n_ctx']} · max_tokens {meta['config']['max_tokens']} · "
        "temperature 0",
        "- Contenders: " + ", ".join(
            f"{k} {'✓' if v else '✗'}" for k, v in meta["available"].items())
        + "".join(f"\n  - {k}: not run ({v})" for k, v in meta["unavailable"].items()),
        "",
        "## Targets",
        "",
    ]
    lines += _table(["#", "target", "measured", "limit", "result"],
                    [[t["id"], t["target"], t["shown"],
                      f"{t['op']} {_limit(t)}", _status(t["status"])] for t in targets])

    if "overhead" in s:
        ov = s["overhead"]
        lines += ["## 1. Overhead: Helios end to end vs bare llama-cpp-python", "",
                  f"Each time {ov.get('mirrored')} ran the model during the keystroke replay, "
                  "the bare model evaluated the very same prompt tokens (rebuilt with the "
                  "engine's PromptBuilder; `work matched` = same prompt and same number "
                  "of evaluated tokens) and sampled the same number of tokens.", ""]
        rows = []
        labels = {"keystrokes": "replay keystrokes", "repeat": "repeated requests",
                  "target_pairs": "target: matched work (both above)",
                  "first": "first request at a place (cold)"}
        for label, title in labels.items():
            g = ov.get(label, {})
            if not g.get("pairs"):
                continue
            rows.append([title, g["pairs"], _fmt_pct(g["work_matched"], 0),
                         _n(g["evaluated"]["median"]), _n(g["sampled"]["median"]),
                         _fmt_ms(g["helios"]["median"]), _fmt_ms(g["bare"]["median"]),
                         _fmt_ratio(g["ratio"]["median"]), _fmt_ratio(g["ratio"]["p95"]),
                         _n(g["extra_ms"]["median"], 1)])
        lines += _table(["requests", "pairs", "work matched", "evaluated (median)",
                         "sampled (median)", "Helios median", "bare median",
                         "ratio median", "ratio p95", "extra ms (median)"], rows)
        split = ov.get("repeat_engine")
        if split:
            lines += [f"Split on the repeated requests ({split['pairs']}): the engine in "
                      f"process takes {_fmt_ratio(split['engine_vs_bare']['median'])} the bare "
                      f"model's time (median), HTTP adds "
                      f"{_n(split['http_minus_engine_ms']['median'], 1)} ms (median) on top.",
                      ""]

    if "replay" in s:
        rp = s["replay"]
        lines += ["## 2. Keystroke replay", "",
                  "Closed loop: after each keystroke every contender answers before the next "
                  "one (order rotating). `first` is the first request at a new place (cold "
                  "prompt), not counted in the keystroke columns.", ""]
        rows = []
        for name, r in rp.items():
            vs, vl = r.get("vs_peer", {}), r.get("vs_llama_server", {})
            rows.append([name, r["keystrokes"], _fmt_ms(r["latency"]["median"]),
                         _fmt_ms(r["latency"]["p95"]),
                         _fmt_ratio(vs.get("median")), _fmt_ratio(vs.get("p95")),
                         _fmt_ratio(vl.get("median")), _fmt_ratio(vl.get("p95")),
                         _fmt_ms(r["latency_within_line"]["median"]),
                         _fmt_ms(r["latency_newline"]["median"]),
                         _fmt_ms(r["latency_first"]["median"]),
                         _n(r["prompt_tokens"]["median"]),
                         f"{_n(r['evaluated']['median'])} / {_n(r['evaluated']['p95'])}",
                         f"{_fmt_pct(r['reeval_share_within_line']['median'], 2)} / "
                         f"{_fmt_pct(r['reeval_share_within_line']['p95'], 2)}",
                         _fmt_pct(r["model_free_share"]), _fmt_pct(r["empty_share"], 0),
                         _fmt_pct(r["useful_share"], 0)])
        lines += _table(["contender", "keystrokes", "median", "p95", "median / peer",
                         "p95 / peer", "median / llama-server", "p95 / llama-server",
                         "within line", "newline", "first (cold)",
                         "prompt tokens", "evaluated median / p95",
                         "re-evaluated within line median / p95", "answered without model",
                         "empty answers", "useful answers"], rows)

    if "paced" in s:
        pc = s["paced"]
        lines += [f"### Typing at one key every {1000 * (pc['interval'] or 0):.0f} ms "
                  "(with cancellation)", "",
                  "The same segments typed at a fixed speed, whatever the answers do. "
                  "`in time`: the suggestion for a keystroke arrived before the next "
                  "keystroke. `last key`: latency of the last keystroke of a segment (the "
                  "user stops and waits). `busy after`: time the server kept working after "
                  "the last keystroke.", ""]
        rows = []
        for name, r in pc.items():
            if name == "interval":
                continue
            eng = r["engine"]
            rows.append([name, r["keystrokes"], _fmt_pct(r["in_time"], 0),
                         _fmt_pct(r["cancelled"], 0), r["errors"],
                         _fmt_ms(r["latency_answered"]["median"]),
                         _fmt_ms(r["last_latency"]["median"]),
                         _fmt_ms(r["last_latency"]["max"]),
                         _fmt_ms(r["busy_after_last_key"]["median"]),
                         ", ".join(f"{k} {v}" for k, v in eng.items() if v) or "–"])
        lines += _table(["contender", "keystrokes", "in time", "cancelled / superseded",
                         "errors", "answered: median", "last key: median", "last key: max",
                         "busy after: median", "engine counters"], rows)

    if "jumps" in s:
        jp = s["jumps"]
        lines += ["### Jumps: the first keystroke after the cursor moves", "",
                  f"{jp['places']} places: a first one, then jumps within a file and between "
                  f"files; at each, a pause of {1000 * (jp['pause'] or 0):.0f} ms (the same for "
                  "every contender), then the line is typed. `first key`: latency of the first "
                  "keystroke after a jump; by kind: within the file, to a file not seen yet, "
                  "back to a file seen before (a line below where the user left it).", ""]
        rows = []
        for name, r in jp.items():
            if not isinstance(r, dict):
                continue
            vl = r.get("vs_llama_server", {})
            by = r["by_kind"]
            rows.append([name, r["jumps"], _fmt_ms(r["first_key"]["median"]),
                         _fmt_ms(r["first_key"]["p95"]), _fmt_ratio(vl.get("median")),
                         _fmt_ratio(vl.get("p95")),
                         *(f"{_fmt_ms(by[k]['median'])} ({by[k]['n']})" for k in JUMP_KINDS),
                         _n(r["evaluated_first_key"]["median"]),
                         _fmt_ms(r["typing"]["median"]), _fmt_ms(r["start"]["median"])])
        lines += _table(["contender", "jumps", "first key: median", "first key: p95",
                         "median / llama-server", "p95 / llama-server",
                         "within file: median (n)", "new file: median (n)",
                         "file seen before: median (n)", "evaluated (median)",
                         "keys after: median", "first place (cold)"], rows)

    if "trimmed" in s:
        from bench.scenarios import trimmed

        lines += trimmed.markdown(s["trimmed"])

    if "cpu" in s:
        from bench.scenarios import cpu

        lines += cpu.markdown(s["cpu"])

    if "typeahead" in s:
        lines += ["## 3. Type-ahead", "",
                  "After one suggestion, its characters are typed one by one; each answer "
                  "should be the rest of it, without the model.", ""]
        rows = []
        for name, r in s["typeahead"].items():
            lat = r["latency_hits"]
            rows.append([name, f"{r['starts_with_suggestion']}/{r['starts']}", r["typed"],
                         f"{r['hits']} ({_fmt_pct(r['hit_share'], 0)})", _fmt_ms(lat["median"]),
                         _fmt_ms(lat["p95"]), _fmt_ms(lat["max"]),
                         _fmt_ms(r["latency_first"]["median"])])
        lines += _table(["contender", "starts with a suggestion", "typed", "type-ahead hits",
                         "median", "p95", "max", "first request (model)"], rows)

    if "quality" in s:
        lines += ["## 4. Quality", "",
                  "Cursor inside a line; the hidden text runs to the closing brackets and "
                  "punctuation the line ends with (kept after the cursor). Both answers are "
                  "compared by their first line; the peer's is cut at the first newline.", ""]
        rows = []
        for name, r in s["quality"].items():
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["garbage_kinds"].items())) or "–"
            rows.append([f"{name} ({r['via']})", r["cases"], _fmt_pct(r["exact"]),
                         _fmt_pct(r["exact_or_with_line_end"]),
                         _n(r["edit_similarity"], 3), _fmt_pct(r["garbage"]), kinds,
                         r["multi_line"], _fmt_ms(r["latency"]["median"])])
        lines += _table(["contender", "cases", "exact match", "exact, or exact plus the line's "
                         "end already after the cursor", "edit similarity (mean)",
                         "garbage", "garbage kinds", "multi-line answers", "latency median"],
                        rows)

    if "startup" in s:
        lines += ["## 5. Start-up and memory", "",
                  "Start-up: process start to `/health` 200 (model loaded) for Helios; to the "
                  "model loaded for the bare process (both count the interpreter start and "
                  "imports). Memory: resident set after one completion, and its peak.", ""]
        rows = []
        for name, r in s["startup"].items():
            if not r["runs"]:
                rows.append([name, "not run: " + str(r["unavailable"]), "", "", "", "", ""])
                continue
            vs = r.get("vs_bare", {})
            rows.append([name, r["runs"], _n(r["startup_seconds"]["median"], 2) + " s",
                         _fmt_ratio(vs.get("startup")), _n(r["rss_mib"]["median"]) + " MiB",
                         _fmt_ratio(vs.get("rss")), _n(r["peak_rss_mib"]["median"]) + " MiB"])
        lines += _table(["process", "runs", "start-up median", "vs bare", "RSS after one "
                         "completion", "vs bare", "peak RSS"], rows)
        bare = s["startup"].get("bare")
        if bare and bare["runs"]:
            lines += [f"Bare: `Llama(...)` itself took {_n(bare['load_seconds']['median'], 2)}"
                      " s of that (median).", ""]

    if "crossfile" in s:
        from bench.scenarios import crossfile

        lines += crossfile.markdown(s["crossfile"], report["results"]["crossfile"])

    lines += ["## Workload", "",
              "Standard-library modules of the running interpreter (SHA-256 prefix shown); "
              "positions drawn with the seed:", ""]
    lines += _table(["file", "sha256", "lines"],
                    [[f["name"], f["sha256"][:12], f["lines"]] for f in meta["workload"]])
    return "\n".join(lines)


def _limit(t: dict[str, Any]) -> str:
    if t["id"].startswith("7-hits"):
        return f"+{100 * t['limit']:.0f} points"
    if t["id"] == "7-index-delay":
        return _fmt_ms(t["limit"])
    if t["id"] == "7-index-rss":
        return f"{t['limit']} MiB"
    if t["id"].startswith("3"):
        return _fmt_ms(t["limit"])
    if t["id"].endswith("reeval") or t["id"] == "4-garbage":
        return _fmt_pct(t["limit"], 0)
    if t["id"] == "4-exact":
        return "0 (peer's)"
    return _fmt_ratio(t["limit"])


def _status(status: str) -> str:
    return {"PASS": "✅ PASS", "FAIL": "❌ FAIL"}.get(status, "– N/A")
