"""The language server warms the cache where the user edits, once they pause: the next
request there evaluates only the last tokens."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.engine.test_trimmed_clients import argparse_text
from tests.gguf_factory import write_tiny_model
from tests.lsp.conftest import (
    StartLsp,
    capabilities,
    edit,
    env_for_model,
    inline,
    open_doc,
    status,
    wait_for_state,
)

URI = "file:///work/argparse.py"


async def test_an_edit_then_a_pause_warms_the_cache(lsp: StartLsp, isolated_env, tmp_path: Path):
    model = write_tiny_model(tmp_path / "wide.gguf", n_ctx_train=16384)
    client = await lsp(env_for_model(isolated_env, model, HELIOS_N_CTX="16384",
                                     HELIOS_TYPEAHEAD="false"),
                       caps=capabilities(inline=True), init_options={"maxTokens": 1})
    await wait_for_state(client, "ready")
    before, after = argparse_text(150)
    open_doc(client, URI, before + after)
    edit(client, URI, 2, (150, 0), (150, 0), "x")  # the user jumps to line 150 and types
    deadline = time.monotonic() + 60
    while (snap := await status(client))["engine"]["stats"]["prefetch_tokens"] < 1000 \
            or snap["engine"]["busy"]:
        assert time.monotonic() < deadline, snap["engine"]["stats"]
        await asyncio.sleep(0.05)
    assert snap["engine"]["stats"]["prefetches"] == 1
    await inline(client, URI, 150, 1)
    assert (await status(client))["engine"]["last_job"]["evaluated_tokens"] <= 5
