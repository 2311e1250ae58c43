"""`helios status`: this user's shared engines, their clients and their memory."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from helios_lsp.shared.paths import EnginePaths, UnsafeRuntimeDirError, all_engines, runtime_dir


async def _ask(paths: EnginePaths) -> dict[str, Any] | None:
    try:
        async with (aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(paths.socket)),
                timeout=aiohttp.ClientTimeout(total=5.0)) as session,
                session.get("http://helios-engine/status") as response):
            return await response.json() if response.status == 200 else None
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        return None


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _describe(paths: EnginePaths, st: dict[str, Any] | None, now: float) -> list[str]:
    if st is None:
        return [f"shared engine {paths.key}: not running (a socket left behind; the next "
                "Helios to need it starts it again)"]
    engine = st.get("engine") or {}
    rss = st.get("rss_bytes")
    memory = f"{rss / 2**20:.0f} MiB resident" if rss else "memory unknown"
    lines = [f"shared engine {paths.key}: pid {st['pid']}, up {_ago(now - st['started'])}, "
             f"{memory}",
             f"  model: {st.get('model') or '-'} ({st['state']}"
             + (f": {st['error']}" if st.get("error") else "") + ")",
             f"  engine: {engine.get('backend', '?')}, {engine.get('n_threads', '?')} threads, "
             f"context {engine.get('n_ctx') or '?'} tokens; "
             f"{(engine.get('stats') or {}).get('completed', 0)} completions"]
    clients = st.get("clients") or []
    lines.append(f"  clients: {len(clients)}")
    for c in clients:
        lines.append(f"    pid {c['pid']:<8} {c['command']}  (attached {_ago(now - c['since'])}, "
                     f"{c['requests']} requests)")
    if not clients:
        lines.append(f"  exits {_ago(st['idle_exit_seconds'])} after its last client left")
    lines.append(f"  log: {st['log']}")
    return lines


def main(*, as_json: bool = False) -> int:
    try:
        directory = runtime_dir()
    except UnsafeRuntimeDirError as exc:
        print(f"helios status: {exc}; engines are not shared")
        return 1
    engines = all_engines(directory)

    async def ask_all() -> list[dict[str, Any] | None]:
        return list(await asyncio.gather(*(_ask(p) for p in engines)))

    answers = asyncio.run(ask_all()) if engines else []
    if as_json:
        print(json.dumps([{"key": p.key, "running": a is not None, **(a or {})}
                          for p, a in zip(engines, answers, strict=True)], indent=2))
        return 0
    if not engines:
        print(f"no shared engine is running (their sockets would be in {directory})")
        return 0
    now = time.time()
    for paths, answer in zip(engines, answers, strict=True):
        print("\n".join(_describe(paths, answer, now)))
    return 0
