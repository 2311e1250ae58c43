"""The context block in the prompts each backend builds (issue 17, part 3).

No FIM code model is on the registries, so the layouts are checked by the prompts they
build: real tiny GGUF models (with Qwen2.5-Coder's and StarCoder2's repository tokens, with
CodeLlama's FIM tokens only, without FIM) through the engine's own builder, and the text the
engine-server backends send (llama-server /infill and /completion, OpenAI-style templates).
"""

from __future__ import annotations

import pytest

from helios_lsp.engine import CompletionInput, Engine
from helios_lsp.engine.backend import BackendInfo
from helios_lsp.engine.languages import detect
from helios_lsp.engine.remote.llama_server import LlamaServerEngine
from helios_lsp.engine.remote.openai import OpenAIEngine
from helios_lsp.engine.remote.templates import TEMPLATES
from helios_lsp.engine.stats import EngineStats
from helios_lsp.engine.text_prompt import TextPromptBuilder
from helios_lsp.engine.types import ContextBlock, Snippet
from helios_lsp.settings import Settings
from tests.gguf_factory import fim_token_ids, write_tiny_model

PY = detect("python")
ABOVE = "import util\n\n\ndef run(items):\n    total = 0\n"
LINE = "    return util."
BLOCK = ContextBlock((
    Snippet("pkg/helpers.py", "def helper_chunk(x):\n    return x\n", "chunk"),
    Snippet("pkg/util.py", "def compute_total(items):\ndef format_line(item):\n", "outline"),
), repo="shop")


async def loaded(tmp_path, fim: str | None, **settings) -> Engine:
    model = write_tiny_model(tmp_path / f"tiny-{fim}.gguf", fim=fim, n_ctx_train=8192)
    engine = Engine(Settings(**{"model": str(model), "n_threads": 1, "n_ctx": 4096,
                                **settings}))
    await engine.load()
    return engine


def build(engine: Engine, block: ContextBlock | None, line: str = LINE, max_tokens: int = 16):
    backend = engine.backend
    return backend._builder.build(ABOVE + line, "\n", PY, "pkg/main.py", max_tokens,
                                  context=block)


def text_of(engine: Engine, tokens: list[int]) -> str:
    return engine.backend.model.llm.detokenize(tokens, special=True).decode()


@pytest.mark.parametrize("fim", ["qwen", "starcoder"])
async def test_repository_tokens_where_the_model_has_them(tmp_path, fim):
    engine = await loaded(tmp_path, fim)
    try:
        ids = fim_token_ids(fim)
        prompt = build(engine, BLOCK)
        tokens = prompt.tokens
        start = 1 if tokens[0] == engine.backend.model.bos else 0
        # <repo>shop\n <sep>pkg/helpers.py\n... <sep>pkg/util.py\n... <sep>pkg/main.py\n <pre>
        assert tokens[start] == ids["repo"]
        seps = [i for i, t in enumerate(tokens) if t == ids["sep"]]
        assert len(seps) == 3 and seps[-1] < tokens.index(ids["pre"])
        pieces = [text_of(engine, tokens[a + 1:b]) for a, b in
                  zip(seps, [*seps[1:], tokens.index(ids["pre"])], strict=True)]
        assert pieces[0].startswith("pkg/helpers.py\ndef helper_chunk(x):")
        assert pieces[1].startswith("pkg/util.py\ndef compute_total(items):")
        assert pieces[2] == "pkg/main.py\n"
        assert "shop" in text_of(engine, tokens[start + 1:seps[0]])
        assert prompt.context_files == ("pkg/helpers.py", "pkg/util.py")
        assert prompt.context_tokens == tokens.index(ids["pre"]) - start
    finally:
        await engine.close()


async def test_fim_without_repository_tokens_gets_comment_blocks_in_the_prefix(tmp_path):
    engine = await loaded(tmp_path, "codellama")
    try:
        ids = fim_token_ids("codellama")
        tokens = build(engine, BLOCK).tokens
        pre, suf = tokens.index(ids["pre"]), tokens.index(ids["suf"])
        prefix = text_of(engine, tokens[pre + 1:suf])
        assert prefix.index("# pkg/helpers.py\ndef helper_chunk") < prefix.index(
            "# pkg/util.py\ndef compute_total") < prefix.index("import util")
    finally:
        await engine.close()


async def test_no_fim_gets_comment_blocks_before_the_file(tmp_path):
    engine = await loaded(tmp_path, None)
    try:
        text = text_of(engine, build(engine, BLOCK).tokens)
        assert text.index("# pkg/util.py\ndef compute_total") < text.index(
            "# pkg/main.py (Python)") < text.index("import util")
    finally:
        await engine.close()


async def test_the_block_keeps_its_tokens_while_the_user_types(tmp_path):
    """Typing on the line after the block changes only the prompt's end: the block (and the
    window) are the same tokens, so the KV cache keeps them."""
    engine = await loaded(tmp_path, None)
    try:
        before = build(engine, BLOCK, LINE).tokens
        after = build(engine, BLOCK, LINE + "comp").tokens
        same = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
                    min(len(before), len(after)))
        assert len(before) - same <= 4
        assert build(engine, BLOCK, LINE).context_tokens > 20
    finally:
        await engine.close()


async def test_the_budget_drops_the_least_important_first_and_keeps_the_windows_share(
        tmp_path):
    engine = await loaded(tmp_path, None, context_tokens=60)
    try:
        big = ContextBlock((
            Snippet("pkg/far.py", "".join(f"def far_{i}():\n" for i in range(40)), "chunk"),
            Snippet("pkg/util.py", "def compute_total(items):\n", "outline"),
        ))
        prompt = build(engine, big)
        assert prompt.context_files == ("pkg/util.py",)  # the first (least important) went
        assert prompt.context_tokens <= 60
        # Never more than half the prompt, whatever the setting.
        wide = await loaded(tmp_path, "codellama", context_tokens=65_536, n_ctx=512)
        try:
            many = ContextBlock(tuple(Snippet(f"m{i}.py", "x = 1\n" * 40) for i in range(50)))
            prompt = wide.backend._builder.build(ABOVE + LINE, "", PY, "a.py", 16, context=many)
            assert 0 < prompt.context_tokens <= (512 - 16 - 8) // 2
        finally:
            await wide.close()
    finally:
        await engine.close()


@pytest.mark.parametrize("fim", [None, "codellama"])
async def test_with_a_block_the_window_above_is_context_prefix_lines(tmp_path, fim):
    """The block sits near the cursor: with one, the window keeps `context_prefix_lines`
    lines (on the grid); without one, `prefix_lines`."""
    engine = await loaded(tmp_path, fim, prefix_lines=256, context_prefix_lines=32)
    try:
        above = "".join(f"value_{i} = {i}\n" for i in range(200))
        builder = engine.backend._builder
        alone = builder.build(above + LINE, "\n", PY, "pkg/main.py", 16)
        with_block = builder.build(above + LINE, "\n", PY, "pkg/main.py", 16, context=BLOCK)
        assert alone.prefix_lines == 200
        assert 32 <= with_block.prefix_lines < 32 + 16  # from a line on the 16-line grid
        text = text_of(engine, with_block.tokens)
        assert "value_199 = 199" in text and "value_150 = 150" not in text
        # The engine-server backends cut their window the same way.
        texts = TextPromptBuilder(4096, 256, 64, context_tokens=1024, context_prefix_lines=32)
        kept = texts.build(above + LINE, "", PY, "pkg/main.py", 16, fim=False, context=BLOCK)
        assert kept.above.count("\n") == with_block.prefix_lines
        assert texts.build(above + LINE, "", PY, "pkg/main.py", 16,
                           fim=False).above.count("\n") == 200
    finally:
        await engine.close()


async def test_a_completion_reports_what_the_block_took(tmp_path):
    engine = await loaded(tmp_path, "qwen")
    try:
        out = await engine.complete(CompletionInput(ABOVE + LINE, "\n", "python", "pkg/main.py",
                                                    max_tokens=2, context=BLOCK))
        assert out.context_files == ("pkg/helpers.py", "pkg/util.py")
        assert out.context_tokens > 0
        assert engine.snapshot()["last_job"]["context_files"] == ["pkg/helpers.py",
                                                                  "pkg/util.py"]
    finally:
        await engine.close()


# --- engine servers: the text they are sent ---------------------------------------------

def remote(kind: type, fim: str | None, template: str | None = None):
    settings = Settings(engine="openai" if kind is OpenAIEngine else "llama-server",
                        engine_url="http://127.0.0.1:9", fim_template=template)
    engine = kind(settings, EngineStats())
    engine.info = BackendInfo("model", 4096, fim, 1, "test")
    engine._builder = TextPromptBuilder(4096, 256, 64,
                                        context_tokens=settings.context_tokens)
    if kind is OpenAIEngine:
        engine.template = TEMPLATES[template] if template else None
        engine.model_id = "model"
    return engine


def request(engine, block=BLOCK):
    inp = CompletionInput(ABOVE + LINE, "\nprint(run([]))\n", "python", "pkg/main.py",
                          context=block)
    prompt, heal = engine.prompt_for(inp, PY, 16)
    return engine.request(prompt, inp, 16, 0.0, heal)


def test_llama_server_infill_gets_input_extra():
    path, body = request(remote(LlamaServerEngine, "llama-server"))
    assert path == "/infill"
    assert body["input_extra"] == [
        {"filename": "pkg/helpers.py", "text": "def helper_chunk(x):\n    return x\n"},
        {"filename": "pkg/util.py", "text": "def compute_total(items):\ndef format_line(item):\n"},
    ]
    assert "helper_chunk" not in body["input_prefix"]  # laid out by the server, not twice


def test_llama_server_completion_gets_comment_blocks():
    path, body = request(remote(LlamaServerEngine, None))
    assert path == "/completion"
    prompt = body["prompt"]
    assert prompt.index("# pkg/util.py\ndef compute_total") < prompt.index(
        "# pkg/main.py (Python)")


@pytest.mark.parametrize(("template", "repo", "sep"), [
    ("qwen", "<|repo_name|>", "<|file_sep|>"), ("starcoder", "<repo_name>", "<file_sep>")])
def test_openai_repository_layout_for_models_trained_with_it(template, repo, sep):
    _, body = request(remote(OpenAIEngine, template, template))
    prompt = body["prompt"]
    assert prompt.startswith(f"{repo}shop\n{sep}pkg/helpers.py\ndef helper_chunk(x):")
    assert f"{sep}pkg/util.py\ndef compute_total(items):" in prompt
    pre = TEMPLATES[template].prefix
    assert f"{sep}pkg/main.py\n{pre}import util" in prompt


def test_openai_other_templates_get_comment_blocks_in_the_prefix():
    _, body = request(remote(OpenAIEngine, "codellama", "codellama"))
    assert body["prompt"].startswith("<PRE> # pkg/helpers.py\ndef helper_chunk")


def test_no_block_no_change():
    _, with_none = request(remote(OpenAIEngine, "qwen", "qwen"), None)
    _, empty = request(remote(OpenAIEngine, "qwen", "qwen"), ContextBlock())
    assert with_none["prompt"] == empty["prompt"]
    assert with_none["prompt"].startswith("<|fim_prefix|>import util")
