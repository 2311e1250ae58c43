"""Latency from a textDocument/inlineCompletion request to its answer, seen by the client.

    .venv/bin/python -m tests.lsp.latency [--runs N] [--file PATH:LINE:COL]

For each run: a fresh `helios lsp` (the default model: the embedded SmolLM2 unless
HELIOS_MODEL says otherwise), the file opened, then

- cold:     the first request at the cursor (the whole prompt is evaluated);
- typed:    one more character typed (didChange) that is NOT what the suggestion starts
            with, then a request (the engine reuses the KV cache for the unchanged prompt);
- accepted: instead, the first character OF the suggestion typed, then a request
            (answered from type-ahead without running the model).

Prints each run and the medians, with the engine's token counts for the job.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import free_port
from tests.lsp.conftest import SERVER, capabilities, edit, inline, open_doc, status, wait_for_state

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = f"{Path(__file__).with_name('data') / 'inventory.py'}:133:20"


@dataclass
class Sample:
    seconds: float
    job: dict[str, Any]
    text: str


async def request(client: LanguageClient, uri: str, line: int, character: int) -> Sample:
    started = time.perf_counter()
    result = await inline(client, uri, line, character)
    seconds = time.perf_counter() - started
    snap = await status(client)
    text = result.items[0].insert_text if result.items else ""
    job = dict(snap["engine"]["last_job"])
    job["typeahead_hits"] = snap["engine"]["stats"]["typeahead_hits"]
    return Sample(seconds, job, text if isinstance(text, str) else text.value)


async def one_run(path: Path, line: int, col: int, env: dict[str, str],
                  accept: bool) -> tuple[Sample, Sample]:
    config = ClientServerConfig(server_command=SERVER, server_env=env)
    client = await config.start()
    try:
        await client.initialize_session(types.InitializeParams(capabilities=capabilities()))
        await wait_for_state(client, "ready")
        uri = path.as_uri()
        text = path.read_text()
        lines = text.split("\n")
        # The cursor's line is cut at the cursor: the user is typing there.
        lines[line] = lines[line][:col]
        open_doc(client, uri, "\n".join(lines))
        cold = await request(client, uri, line, col)
        if accept and cold.text:
            char = cold.text[0]
        else:
            char = "z" if not cold.text.startswith("z") else "q"
        edit(client, uri, 2, (line, col), (line, col), char)
        typed = await request(client, uri, line, col + 1)
        await client.shutdown_session()
        return cold, typed
    finally:
        await client.stop()


def describe(sample: Sample) -> str:
    job = sample.job
    return (f"{sample.seconds * 1000:7.0f} ms  prompt {job.get('prompt_tokens', '-'):>5} "
            f"evaluated {job.get('evaluated_tokens', '-'):>5} reused "
            f"{job.get('reused_tokens', '-'):>5} generated {job.get('generated_tokens', '-'):>3}"
            f"  {job.get('stop_reason', '')}  {sample.text[:40]!r}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--file", default=DEFAULT_FILE, help="PATH:LINE:COL (1-based)")
    args = parser.parse_args()
    path_text, line_text, col_text = args.file.rsplit(":", 2)
    path, line, col = Path(path_text), int(line_text) - 1, int(col_text) - 1
    env = {k: v for k, v in os.environ.items()}
    results: dict[str, list[float]] = {"cold": [], "typed": [], "cold ": [], "accepted": []}
    for run in range(args.runs):
        for accept in (False, True):
            env["HELIOS_PORT"] = str(free_port())
            cold, typed = await one_run(path, line, col, env, accept)
            second = "accepted" if accept else "typed"
            print(f"run {run + 1} cold     {describe(cold)}")
            print(f"run {run + 1} {second:<8} {describe(typed)}")
            results["cold " if accept else "cold"].append(cold.seconds)
            results[second].append(typed.seconds)
    colds = results["cold"] + results["cold "]
    print(f"\nmedian of {len(colds)} cold: {statistics.median(colds) * 1000:.0f} ms; "
          f"one more character: {statistics.median(results['typed']) * 1000:.0f} ms "
          f"(not the suggestion's), {statistics.median(results['accepted']) * 1000:.0f} ms "
          f"(the suggestion's own, type-ahead)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
