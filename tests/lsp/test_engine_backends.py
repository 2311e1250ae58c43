"""`helios lsp` on a real llama-server (HELIOS_ENGINE=llama-server): ghost text from the
server's model, cleaned by Helios; the server going away is shown, and it comes back by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llama_server import LlamaServer, find_binary, missing_reason
from tests.lsp.conftest import (
    StartLsp,
    capabilities,
    env_for_embedded,
    inline,
    open_doc,
    wait_for_state,
)

pytestmark = pytest.mark.skipif(find_binary() is None, reason=missing_reason())

FIB = "file:///work/fibonacci.py"
FIB_TEXT = "def fibonacci(n):\n    if n <= 1:\n        return n\n    \n"


async def test_inline_completion_from_llama_server(lsp: StartLsp, isolated_env, embedded_model,
                                                   tmp_path: Path):
    llama = LlamaServer(embedded_model, log_path=tmp_path / "ls.log").start()
    try:
        client = await lsp(env_for_embedded(isolated_env, HELIOS_ENGINE="llama-server",
                                            HELIOS_ENGINE_URL=llama.url, HELIOS_TYPEAHEAD="false"),
                           caps=capabilities(inline=True), init_options={"temperature": 0})
        snap = await wait_for_state(client, "ready")
        assert snap["engine"]["backend"] == "llama-server"
        open_doc(client, FIB, FIB_TEXT)
        result = await inline(client, FIB, 3, 4)
        assert result.items and str(result.items[0].insert_text).strip()

        port = llama.port
        llama.kill()  # the engine server goes away: empty answers, and the state says why
        assert not (await inline(client, FIB, 2, 16)).items
        snap = await wait_for_state(client, "failed")
        assert "not reachable" in snap["engine"]["load_error"]
        assert any("not reachable" in m.message for m in client.log_messages)

        llama = LlamaServer(embedded_model, port=port, log_path=tmp_path / "ls2.log").start()
        await wait_for_state(client, "ready", timeout=60)  # back by itself, no restart
        assert (await inline(client, FIB, 3, 4)).items
    finally:
        llama.stop()
