"""Cross-file context (issue 17): does Helios name what another file defines, and at what
cost per keystroke.

Cases come from `bench.crossfile_workload`: the cursor right after `module.` on a line of
a file F, where NAME is defined in a sibling module S and appears nowhere earlier in F.
Each configuration is its own `helios lsp` (embedded model, temperature 0, HELIOS_SHARE
false, prefix mode):

- `off`: `"context": false`, only F open;
- `open`: context on, workspace indexing off; S, then three other files of the package,
  then F opened (S is not the most recent);
- `workspace`: context on, the package's directory (a copy of it) as the workspace folder,
  only F open. One server per package: its index holds that package only.

At each case and for each configuration (order rotating, the other servers idle): F is
opened without the `.` and the `.` is typed (didChange), then the user's pause, then the
wait until Helios is idle (engine not busy, nothing queued, the index not "indexing"),
then textDocument/inlineCompletion. Scored: identifier hit (the suggestion's first
identifier is NAME) and exact match (its first line is the rest of the line). Then, for
`off` and `workspace`, the next characters of the line are typed, closed loop, each
answered: the keystroke latency with and without the block in the prompt.

Type-ahead is off in these servers (HELIOS_TYPEAHEAD=false): it never changes the first
answer, and with it on a keystroke would be answered without the model exactly when the
block made the suggestion right, which is not the cost the block adds to a keystroke.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.contenders import HeliosLSP, Unavailable, engine_busy
from bench.context import Context
from bench.crossfile_workload import (
    CrossfileCase,
    Draw,
    Package,
    PackageFile,
    copy_package,
    other_files,
    workload_files,
)
from bench.stats import ratio, summary

CONFIGS = ("off", "open", "workspace")
PARTS = (*CONFIGS, "keys", "index")  # what `--crossfile-parts` may name
KEY_CONFIGS = ("off", "workspace")  # keystroke latency: context off vs on
OPEN_OTHERS = 3
# Seconds: a package's index, a cold window. A few seconds on a quiet machine; minutes on
# an overloaded one, where a wait cut short leaves the next case's cache cold too.
IDLE_TIMEOUT = 600.0
COLD = 16  # prompt tokens evaluated by the request itself: the pause did not warm the place
TARGET_POINTS = 0.15  # identifier hits with context: at least 15 points above `off`
TARGET_KEYS_P95 = 1.1
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")

OPTIONS: dict[str, dict[str, Any]] = {
    "off": {"context": False},
    "open": {"context": {"enabled": True, "workspace": False}},
    "workspace": {"context": {"enabled": True, "workspace": True}},
}


# --- what Helios says about its context -----------------------------------------------


def context_status(status: dict[str, Any]) -> dict[str, Any] | None:
    """`engine.context` of a helios.status answer, or None (a Helios without context)."""
    engine = status.get("engine")
    ctx = engine.get("context") if isinstance(engine, dict) else None
    return ctx if isinstance(ctx, dict) else None


def workspace_status(status: dict[str, Any]) -> dict[str, Any] | None:
    ctx = context_status(status)
    ws = ctx.get("workspace") if ctx else None
    return ws if isinstance(ws, dict) else None


def idle(status: dict[str, Any]) -> bool:
    """Helios works on nothing: no request, nothing queued, no warming, not indexing."""
    engine = status.get("engine")
    if not isinstance(engine, dict) or engine_busy(engine):
        return False
    ws = workspace_status(status)
    return not (ws and ws.get("state") == "indexing")


def wait_idle(lsp: HeliosLSP, timeout: float = IDLE_TIMEOUT) -> dict[str, Any]:
    """Poll helios.status until idle twice in a row (a background job may start right
    after a reading); untimed for the measurement. Returns the wait and the last status."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    streak, status = 0, {}
    while time.monotonic() < deadline:
        status = lsp.status()
        streak = streak + 1 if idle(status) else 0
        if streak >= 2:
            break
        time.sleep(0.05)
    return {"seconds": time.perf_counter() - started, "timed_out": streak < 2,
            "status": status}


STALE_READY = 5.0  # seconds "ready" with no file may mean the folder is not picked up yet


def index_ready(ws: dict[str, Any] | None, seen_indexing: bool, stale_for: float) -> bool:
    """Whether a workspace status says the folder given is indexed: "ready" with files (or
    after "indexing" was seen); "ready" with none for STALE_READY s counts too (nothing
    to index, which the report then shows)."""
    if not ws or ws.get("state") != "ready":
        return False
    return bool(ws.get("files")) or seen_indexing or stale_for >= STALE_READY


def wait_indexed(lsp: HeliosLSP, timeout: float = IDLE_TIMEOUT) -> dict[str, Any]:
    """After a workspace folder is given: wait until the index is ready (a Helios that
    reports no workspace: until idle), then until idle."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    seen_indexing, ready_since = False, None
    while time.monotonic() < deadline:
        ws = workspace_status(lsp.status())
        if ws is None:
            break
        seen_indexing = seen_indexing or ws.get("state") == "indexing"
        now = time.perf_counter()
        ready_since = (ready_since or now) if ws.get("state") == "ready" else None
        if index_ready(ws, seen_indexing, now - (ready_since or now)):
            break
        time.sleep(0.05)
    waited = wait_idle(lsp, max(1.0, deadline - time.monotonic()))
    ws = workspace_status(waited["status"])
    return {"seconds": time.perf_counter() - started, "workspace": ws,
            "timed_out": waited["timed_out"] or bool(ws and ws.get("state") != "ready")}


def context_messages(lsp: HeliosLSP) -> list[str]:
    """What the server told the client about the `context` setting (today's Helios reports
    it as an unknown setting, and ignores it)."""
    out = []
    for method, params in lsp.rpc.notifications:
        if method in ("window/showMessage", "window/logMessage") and isinstance(params, dict):
            text = str(params.get("message", ""))
            if "context" in text.lower():
                out.append(text[:300])
    return out


# --- scoring ----------------------------------------------------------------------------


def first_identifier(text: str) -> str | None:
    m = _IDENT.search(text)
    return m.group(0) if m else None


def score(suggestion: str, case: CrossfileCase) -> dict[str, Any]:
    line = suggestion.split("\n", 1)[0]
    ident = first_identifier(suggestion)
    return {"suggestion": suggestion, "first_identifier": ident,
            "hit": ident == case.name, "exact": line.rstrip() == case.rest.rstrip()}


# --- servers ----------------------------------------------------------------------------


class _Copies:
    """Each package copied once into the run's temp dir (see `copy_package`); documents are
    opened under the copy's paths, so an open document and its file in the workspace are
    the same file to Helios."""

    def __init__(self, tmp: Path):
        self.dest = tmp / "crossfile-packages"
        self.dest.mkdir(parents=True, exist_ok=True)
        self.roots: dict[str, Path] = {}

    def root(self, pkg: Package) -> Path:
        if pkg.name not in self.roots:
            self.roots[pkg.name] = copy_package(pkg, self.dest)
        return self.roots[pkg.name]

    def uri(self, pkg: Package, f: PackageFile) -> str:
        return (self.root(pkg) / pkg.rel(f)).as_uri()


def start_server(ctx: Context, config: str, folders: list[Path] | None = None
                 ) -> HeliosLSP:
    cfg = ctx.config
    return HeliosLSP(ctx.model, cfg.threads, ctx.tmp, cfg.max_tokens,
                     options=OPTIONS[config], workspace_folders=folders,
                     env={"HELIOS_TYPEAHEAD": "false"}, name=f"helios-lsp-{config}")


def _close(lsp: HeliosLSP | None) -> None:
    if lsp is not None:
        with contextlib.suppress(Exception):  # a server that died already: nothing to stop
            lsp.close()


# --- one case in one configuration -------------------------------------------------------


def ask(ctx: Context, lsp: HeliosLSP, config: str, ci: int, case: CrossfileCase,
        copies: _Copies, pause: float, keys: int) -> list[dict[str, Any]]:
    """Open the files, type the `.`, pause, wait until idle, ask; then type `keys`
    characters of the line. Returns the case's record and its keystroke records."""
    pkg, lang = case.package, case.language
    opened: list[str] = []
    others: list[PackageFile] = []
    if config == "open":  # S first, then three others: S is not the most recent
        others = other_files(case, OPEN_OTHERS, ctx.config.seed)
        for g in (case.sibling, *others):
            opened.append(copies.uri(pkg, g))
            lsp.open(opened[-1], g.text, lang)
    uri = copies.uri(pkg, case.file)
    lsp.open(uri, case.prefix[:-1] + case.suffix, lang)
    opened.append(uri)
    lsp.insert(uri, case.prefix[:-1], ".")
    time.sleep(pause)  # the user's pause: Helios chooses and evaluates its block
    waited = wait_idle(lsp)
    lsp.resync_stats()
    ans = lsp.complete(uri, case.prefix)
    status = lsp.status()
    cstat = context_status(status)
    last = cstat.get("last_prompt") if cstat else None
    where = {"config": config, "case": ci, "package": pkg.name, "language": lang,
             "file": case.file.name, "line": case.line + 1, "module": case.module,
             "name": case.name, "sibling": case.sibling.name,
             "sibling_rel": pkg.rel(case.sibling), "file_rel": pkg.rel(case.file)}
    rec = {
        **where, "kind": "ask", "expected": case.rest, **score(ans.text, case),
        "latency": ans.latency, "error": ans.error, "model_ran": ans.model_ran,
        "prompt_tokens": ans.prompt_tokens, "evaluated": ans.evaluated,
        "idle_wait": waited["seconds"], "idle_timed_out": waited["timed_out"],
        "context_enabled": cstat.get("enabled") if cstat else None,
        "last_prompt": last if isinstance(last, dict) else None,
        "open_files": [g.name for g in (case.sibling, *others)] if config == "open" else [],
    }
    records = [rec]
    prefix = case.prefix
    for k in range(1, min(keys, len(case.rest)) + 1):
        prefix += case.rest[k - 1]
        key = lsp.complete(uri, prefix, typed=case.rest[k - 1])
        records.append({**where, "kind": "key", "k": k, "latency": key.latency,
                        "error": key.error, "model_ran": key.model_ran,
                        "prompt_tokens": key.prompt_tokens, "evaluated": key.evaluated})
    for u in reversed(opened):
        lsp.close_document(u)
    return records


# --- the run ------------------------------------------------------------------------------


def run(ctx: Context, draw: Draw, pause: float, parts: set[str]) -> dict[str, Any]:
    cfg = ctx.config
    cases = draw.cases
    configs = [c for c in CONFIGS if c in parts or ("keys" in parts and c in KEY_CONFIGS)]
    keys = cfg.crossfile_keys if "keys" in parts else 0
    for name, n in draw.packages.items():
        ctx.log(f"crossfile: {name}: {n['drawn']} cases of {n['candidates']} candidates "
                f"in {n['files']} files" if n["candidates"] is not None
                else f"crossfile: {name}: not looked at (enough cases before it)")
    records: list[dict[str, Any]] = []
    indexes: list[dict[str, Any]] = []
    notes: dict[str, list[str]] = {}
    unavailable: dict[str, str] = {}
    copies = _Copies(ctx.tmp)
    shared: dict[str, HeliosLSP | None] = {}
    try:
        for config in ("off", "open"):
            if config in configs:
                ctx.log(f"crossfile: starting helios-lsp-{config}")
                try:
                    shared[config] = start_server(ctx, config)
                except Unavailable as exc:
                    unavailable[config] = str(exc)
                    ctx.log(f"crossfile: {config} unavailable: {exc}")
        by_package: dict[str, list[tuple[int, CrossfileCase]]] = defaultdict(list)
        for ci, case in enumerate(cases):
            by_package[case.package.name].append((ci, case))
        for pkg_name, group in by_package.items():
            pkg = group[0][1].package
            servers = {k: v for k, v in shared.items() if v is not None}
            ws: HeliosLSP | None = None
            if "workspace" in configs:
                root = copies.root(pkg)
                ctx.log(f"crossfile: helios-lsp-workspace on {pkg_name} ({len(pkg.files)} "
                        f"{pkg.language} files)")
                try:
                    ws = start_server(ctx, "workspace", [root])
                    indexes.append({"package": pkg_name, **wait_indexed(ws)})
                    servers["workspace"] = ws
                except Unavailable as exc:
                    unavailable["workspace"] = str(exc)
                    ctx.log(f"crossfile: workspace unavailable: {exc}")
            try:
                for ci, case in group:
                    ctx.log(f"crossfile {ci + 1}/{len(cases)}: {case.key}")
                    order = [c for c in configs if c in servers]
                    shift = ci % max(1, len(order))
                    for config in order[shift:] + order[:shift]:
                        for other, lsp in servers.items():  # untimed: nobody else works
                            if other != config:
                                wait_idle(lsp)
                        records += ask(ctx, servers[config], config, ci, case, copies, pause,
                                       keys if config in KEY_CONFIGS else 0)
            finally:
                if ws is not None:
                    notes["workspace"] = context_messages(ws)
                _close(ws)
        for config, lsp in shared.items():
            if lsp is not None:
                notes[config] = context_messages(lsp)
    finally:
        for lsp in shared.values():
            _close(lsp)
    return {
        "records": records,
        "configs": configs,
        "keys": keys,
        "pause": pause,
        "packages": draw.packages,
        "workspace_indexes": indexes,
        "server_messages": notes,
        "unavailable": unavailable,
        "workload": [{"name": f.name, "sha256": f.sha256, "lines": f.text.count("\n") + 1}
                     for f in workload_files(cases, cfg.seed, OPEN_OTHERS)],
    }


# --- summary, targets, report ------------------------------------------------------------


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def summarize(result: dict[str, Any], index: dict[str, Any] | None = None) -> dict[str, Any]:
    records = result.get("records", [])
    asks = [r for r in records if r["kind"] == "ask"]
    out: dict[str, Any] = {"configs": {}, "packages": {}, "keys": {},
                           "pause": result.get("pause"), "unavailable":
                           result.get("unavailable", {}), "candidates": result.get("packages")}
    for config in result.get("configs", []):
        rs = [r for r in asks if r["config"] == config]
        ok = [r for r in rs if not r.get("error")]
        lasts = [r["last_prompt"] for r in rs if r.get("last_prompt")]
        out["configs"][config] = {
            "cases": len(rs),
            "errors": len(rs) - len(ok),
            "hits": sum(bool(r["hit"]) for r in rs),
            "hit_share": _share([bool(r["hit"]) for r in rs]),
            "exact": sum(bool(r["exact"]) for r in rs),
            "exact_share": _share([bool(r["exact"]) for r in rs]),
            "latency": summary(r["latency"] for r in ok),
            "idle_wait": summary(r["idle_wait"] for r in rs),
            "idle_timed_out": sum(bool(r["idle_timed_out"]) for r in rs),
            "cold": sum((r.get("evaluated") or 0) > COLD for r in ok),
            "context_reported": sum(r.get("context_enabled") is not None for r in rs),
            "context_enabled": sum(bool(r.get("context_enabled")) for r in rs),
            "last_prompt_tokens": summary(lp.get("tokens") for lp in lasts
                                          if isinstance(lp.get("tokens"), int | float)),
            "last_prompt_files": summary(len(lp.get("files") or []) for lp in lasts),
            "sibling_in_prompt": _share([_in_prompt(r, "sibling_rel") for r in rs
                                         if r.get("last_prompt")]),
            # F in its own context block: from its buffer, or from disk, where the line
            # is whole (the answer): worth a look when not 0.
            "self_in_prompt": _share([_in_prompt(r, "file_rel") for r in rs
                                      if r.get("last_prompt")]),
        }
        for pkg in dict.fromkeys(r["package"] for r in rs):
            ps = [r for r in rs if r["package"] == pkg]
            out["packages"].setdefault(pkg, {})[config] = {
                "cases": len(ps), "hits": sum(bool(r["hit"]) for r in ps),
                "exact": sum(bool(r["exact"]) for r in ps)}
    for config in KEY_CONFIGS:
        ks = [r for r in records if r["kind"] == "key" and r["config"] == config
              and not r.get("error")]
        if ks:
            out["keys"][config] = {
                "keystrokes": len(ks),
                "latency": summary(r["latency"] for r in ks),
                "model_ran_share": _share([bool(r["model_ran"]) for r in ks
                                           if r.get("model_ran") is not None]),
                "evaluated": summary(r["evaluated"] for r in ks
                                     if r.get("evaluated") is not None),
                "prompt_tokens": summary(r["prompt_tokens"] for r in ks
                                         if r.get("prompt_tokens") is not None),
            }
    on, off = out["keys"].get("workspace"), out["keys"].get("off")
    if on and off:
        out["keys"]["ratio"] = {s: ratio(on["latency"][s], off["latency"][s])
                                for s in ("median", "p95")}
    base = out["configs"].get("off", {}).get("hit_share")
    for config in ("open", "workspace"):
        c = out["configs"].get(config)
        if c and base is not None and c["hit_share"] is not None:
            c["hit_points_over_off"] = c["hit_share"] - base
    if index is not None:
        from bench.scenarios import crossfile_index

        out["index"] = crossfile_index.summarize(index)
    return out


def _in_prompt(r: dict[str, Any], key: str) -> bool:
    """Whether the last prompt's files include the file `r[key]` names (S or F): its path
    relative to the package's directory (the workspace folder), or an absolute path or URI
    ending with the package's name and that path (`r[key]` less `_rel`). Another file of
    the same name in a subfolder (`v1/mypy.py` for `mypy.py`) is not it."""
    rel = r.get(key)
    full = r.get(key.removesuffix("_rel"))
    return bool(rel) and any(
        isinstance(f, str) and (f.removeprefix("./") == rel or (
            (f.startswith("/") or ":" in f) and bool(full) and f.endswith("/" + full)))
        for f in (r.get("last_prompt") or {}).get("files") or [])


def check_targets(s: dict[str, Any], target) -> list[dict[str, Any]]:
    """The issue's targets; `target` is report._target (N/A when not measured)."""
    t = []
    off = s["configs"].get("off", {})
    for config in ("open", "workspace"):
        c = s["configs"].get(config, {})
        pts = c.get("hit_points_over_off")
        shown = "–" if pts is None else (
            f"{100 * c['hit_share']:.0f} % vs {100 * off['hit_share']:.0f} % "
            f"({100 * pts:+.0f} points)" + _unreported(c))
        t.append(target(f"7-hits-{config}", f"Cross-file: identifier hits with context "
                        f"`{config}` − with the file alone (points)", pts, TARGET_POINTS, ">=",
                        shown))
    r = s.get("keys", {}).get("ratio", {}).get("p95")
    ws = s["configs"].get("workspace", {})
    # The cost of a block Helios did not say it built is not the cost of context.
    measured = r if ws.get("context_reported") else None
    t.append(target("7-keys-p95", "Cross-file: keystroke p95 with context / without", measured,
                    TARGET_KEYS_P95, "<=", "–" if r is None else f"{r:.2f}×" + _unreported(ws)))
    if "index" in s:
        from bench.scenarios import crossfile_index

        t += crossfile_index.check_targets(s["index"], target)
    return t


def _unreported(c: dict[str, Any]) -> str:
    return "" if c.get("context_reported") else " (Helios reported no context)"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _ms(x: float | None) -> str:
    return "–" if x is None else (f"{1000 * x:.1f} ms" if x < 0.01 else f"{1000 * x:.0f} ms")


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _n(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    def row(cells: list[Any]) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    return [row(head), row(["---"] * len(head)), *(row(r) for r in rows), ""]


def markdown(s: dict[str, Any], result: dict[str, Any]) -> list[str]:
    lines = ["## 6. Cross-file context", "",
             "The cursor right after `module.` on lines of real packages where NAME is "
             "defined in a sibling module and appears nowhere earlier in the file. `off`: "
             "context off, the file alone; `open`: the sibling and three other files of the "
             "package open in the editor before the file; `workspace`: the package as the "
             "workspace folder, the file alone open. Each after a pause of "
             f"{1000 * (s.get('pause') or 0):.0f} ms and a wait until Helios was idle. "
             "`hit`: the suggestion's first identifier is NAME; `exact`: its first line is "
             "the rest of the line.", ""]
    if not s["configs"]:
        lines = lines[:2]  # the index alone was run
    rows = []
    for config, c in s["configs"].items():
        rows.append([config, c["cases"], f"{c['hits']} ({_pct(c['hit_share'])})",
                     f"{c['exact']} ({_pct(c['exact_share'])})",
                     _ms(c["latency"]["median"]), _ms(c["latency"]["p95"]),
                     f"{c['context_enabled']}/{c['cases']}" if c["context_reported"] else "–",
                     _n(c["last_prompt_tokens"]["median"]), _n(c["last_prompt_files"]["median"]),
                     _pct(c["sibling_in_prompt"]), _pct(c["self_in_prompt"]), c["cold"],
                     c["errors"] + c["idle_timed_out"]])
    configs = list(s["configs"])
    if configs:
        lines += _table(["config", "cases", "identifier hits", "exact", "latency median",
                         "latency p95", "context on (status)", "context tokens (median)",
                         "context files (median)", "sibling in the prompt",
                         "the file itself in its context",
                         f"cold answers (> {COLD} tokens evaluated)",
                         "errors / idle waits timed out"], rows)
        rows = []
        for pkg, per in s["packages"].items():
            rows.append([pkg, *(f"{per[c]['hits']}/{per[c]['cases']} · {per[c]['exact']}"
                                if c in per else "–" for c in configs)])
        lines += ["Per package: identifier hits / cases · exact matches.", ""]
        lines += _table(["package", *configs], rows)
    ks = s.get("keys", {})
    if ks.get("off") or ks.get("workspace"):
        lines += ["Keystrokes typed at each place after the answer (the next characters of the "
                  "line, closed loop, type-ahead off so each one runs the model):", ""]
        rows = []
        for config in KEY_CONFIGS:
            k = ks.get(config)
            if k:
                rows.append([config, k["keystrokes"], _ms(k["latency"]["median"]),
                             _ms(k["latency"]["p95"]), _n(k["evaluated"]["median"]),
                             _n(k["prompt_tokens"]["median"])])
        r = ks.get("ratio", {})
        rows.append(["workspace / off", "", _ratio(r.get("median")), _ratio(r.get("p95")),
                     "", ""])
        lines += _table(["context", "keystrokes", "p50", "p95", "evaluated (median)",
                         "prompt tokens (median)"], rows)
    idx = [i for i in result.get("workspace_indexes", []) if i.get("workspace")]
    if idx:
        lines += ["The `workspace` servers' own index (one server per package):", ""]
        lines += _table(["package", "files", "bytes", "state", "seconds (status)",
                         "ready after (our clock)"],
                        [[i["package"], i["workspace"].get("files"),
                          i["workspace"].get("bytes"), i["workspace"].get("state"),
                          i["workspace"].get("seconds"), f"{i['seconds']:.1f} s"]
                         for i in idx])
    if "index" in s:
        from bench.scenarios import crossfile_index

        lines += crossfile_index.markdown(s["index"])
    if s.get("unavailable"):
        lines += ["Not run: " + "; ".join(f"{k}: {v}" for k, v in s["unavailable"].items()),
                  ""]
    msgs = {k: v for k, v in (result.get("server_messages") or {}).items() if v}
    if msgs:
        lines += ["What the servers said about the `context` setting: " + "; ".join(
            f"{k}: {v[0]}" for k, v in msgs.items()), ""]
    cand = s.get("candidates") or {}
    if cand:
        lines += ["Packages (cases drawn with the seed, at most two per file; `–`: not looked "
                  "at, the draw was full before it):", ""]
        lines += _table(["package", "language", "version", "candidate lines", "in files",
                         "cases"],
                        [[k, v.get("language"), v.get("version") or "–",
                          _n(v.get("candidates")), _n(v.get("files")), v.get("drawn")]
                         for k, v in cand.items()])
    if result.get("workload"):
        lines += ["Files read (F, S and the `open` config's other files; SHA-256 prefix):",
                  ""]
        lines += _table(["file", "sha256", "lines"],
                        [[f["name"], f["sha256"][:12], f["lines"]] for f in result["workload"]])
    return lines
