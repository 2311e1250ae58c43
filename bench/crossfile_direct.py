"""`python -m bench.crossfile_direct`: the cross-file cases against the engine in-process.

The same cases as `python -m bench --only crossfile` (seeded draw, same scoring), without
the language server: for each case the context library chooses the block from the
`open` documents (the sibling and three other files of the package) or the package as the
`workspace`, as Helios's servers do, and the engine completes at the cursor with it; `off`
completes with no block. The warm-up the servers do in the background is not needed here:
there is no quick window (every answer uses the full window with its block). Quicker than
the full scenario and not timed: it measures what the block does to the suggestions, with
the window sizes as knobs (`--prefix-lines`, `--context-prefix-lines`).

    python -m bench.crossfile_direct --cases 24 --context-prefix-lines 48 --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench.crossfile_workload import CrossfileCase, draw_cases, load_packages, other_files
from bench.scenarios.crossfile import OPEN_OTHERS, score
from helios_lsp.engine.context import ContextLimits, ContextQuery, ContextSources
from helios_lsp.engine.core import Engine
from helios_lsp.engine.crossfile import CHARS_PER_TOKEN
from helios_lsp.engine.types import CompletionInput, ContextBlock
from helios_lsp.settings import Settings

CONFIGS = ("off", "open", "workspace")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.crossfile_direct", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--prefix-lines", type=int, default=None,
                   help="lines of the file above the cursor (default: Helios's default)")
    p.add_argument("--context-prefix-lines", type=int, default=None,
                   help="lines above the cursor when a block is in the prompt")
    p.add_argument("--context-tokens", type=int, default=None,
                   help="the block's budget (default: Helios's default)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write the records here (JSON)")
    return p


class Blocks:
    """The block each configuration gives a case, chosen by the context library."""

    def __init__(self, budget_tokens: int, seed: int):
        self.budget = budget_tokens * CHARS_PER_TOKEN
        self.seed = seed
        self.workspaces: dict[str, ContextSources] = {}

    def block(self, config: str, case: CrossfileCase) -> ContextBlock:
        if config == "off":
            return ContextBlock()
        pkg = case.package
        if config == "open":
            sources = ContextSources(ContextLimits())
            sources.workspace_enabled = False
            for f in (case.sibling, *other_files(case, OPEN_OTHERS, self.seed)):
                sources.document_opened(f.path.as_uri(), f.path, pkg.rel(f), case.language,
                                        f.text)
        else:
            sources = self.workspaces.get(pkg.name)
            if sources is None:
                sources = self.workspaces[pkg.name] = ContextSources(ContextLimits())
                sources.set_folders([pkg.root])
                sources.wait_ready(300)
        uri = case.file.path.as_uri()
        sources.document_opened(uri, case.file.path, pkg.rel(case.file), case.language,
                                case.document)
        query = ContextQuery(key=uri, path=case.file.path, name=pkg.rel(case.file),
                             language=case.language, text=case.document,
                             cursor=len(case.prefix))
        try:
            snippets, names = sources.choose(query, self.budget)
            return ContextBlock(snippets, repo=sources.repo_name(query), names=names)
        finally:
            sources.document_closed(uri)
            if config == "open":
                sources.close()

    def close(self) -> None:
        for sources in self.workspaces.values():
            sources.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {"share": False, "quick_window_lines": 0, "typeahead": False,
                               "n_threads": args.threads}
    if args.prefix_lines is not None:
        changes["prefix_lines"] = args.prefix_lines
    if args.context_tokens is not None:
        changes["context_tokens"] = args.context_tokens
    if args.context_prefix_lines is not None:
        changes["context_prefix_lines"] = args.context_prefix_lines
    settings = Settings.from_env().replace(**changes)
    engine = Engine(settings)
    await engine.load()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    cases = draw_cases(load_packages(), args.cases, args.seed).cases
    blocks = Blocks(settings.context_tokens, args.seed)
    records = []
    try:
        for i, case in enumerate(cases):
            for config in configs:
                block = blocks.block(config, case)
                out = await engine.complete(CompletionInput(
                    prefix=case.prefix, suffix=case.suffix, language=case.language,
                    filename=case.package.rel(case.file), max_tokens=64, temperature=0.0,
                    context=block))
                sibling = case.package.rel(case.sibling)
                rec = {"case": i, "key": case.key, "config": config, **score(out.text, case),
                       "sibling_in_block": sibling in block.files,
                       "name_in_block": any(case.name in s.text for s in block.snippets),
                       "prompt_tokens": out.prompt_tokens, "context_tokens": out.context_tokens}
                records.append(rec)
                print(f"{i + 1:2}/{len(cases)} {config:9} {case.key:55} "
                      f"{'HIT ' if rec['hit'] else 'miss'} {out.text[:40]!r}", flush=True)
    finally:
        blocks.close()
        await engine.close()
    summary = {}
    for config in configs:
        rs = [r for r in records if r["config"] == config]
        summary[config] = {"cases": len(rs), "hits": sum(r["hit"] for r in rs),
                           "exact": sum(r["exact"] for r in rs),
                           "sibling_in_block": sum(r["sibling_in_block"] for r in rs),
                           "name_in_block": sum(r["name_in_block"] for r in rs)}
    return {"settings": {"prefix_lines": settings.prefix_lines,
                         "context_prefix_lines": settings.context_prefix_lines,
                         "context_tokens": settings.context_tokens,
                         "cases": len(cases), "seed": args.seed},
            "summary": summary, "records": records}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = asyncio.run(run(args))
    print(json.dumps({"settings": result["settings"], "summary": result["summary"]}, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
