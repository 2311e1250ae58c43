"""Keeping `module.` on the module's names (engine/names.py and the decoding loop)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helios_lsp.engine import CompletionInput, Engine
from helios_lsp.engine.model import LoadedModel
from helios_lsp.engine.model_source import resolve_model
from helios_lsp.engine.names import NameSteer, steer_for
from helios_lsp.engine.types import ContextBlock
from helios_lsp.settings import Settings
from tests.llama_server import LlamaServer, find_binary, missing_reason

BLOCK = ContextBlock(names=(("hdrs", ("CONTENT_LENGTH", "CONTENT_TYPE", "zq_alpha")),
                            ("other", ("x",))))


def test_a_steer_only_right_after_a_module_the_block_knows():
    assert steer_for("enc = hdrs.", BLOCK) == NameSteer(
        "", ("CONTENT_LENGTH", "CONTENT_TYPE", "zq_alpha"))
    assert steer_for("enc = hdrs.CONTENT_", BLOCK) == NameSteer(
        "CONTENT_", ("CONTENT_LENGTH", "CONTENT_TYPE"))
    assert steer_for("enc = hdrs.", None) is None
    assert steer_for("enc = hdrs.", ContextBlock()) is None
    assert steer_for("enc = unknown.", BLOCK) is None
    assert steer_for("enc = self.hdrs.", BLOCK) is None  # an attribute of something else
    assert steer_for("enc = hdrs.CONTENT_TYPE(", BLOCK) is None  # the name is written
    assert steer_for("enc = hdrs.NOT_A_NAME", BLOCK) is None  # what the user types wins
    assert steer_for("enc = hdrs", BLOCK) is None


def test_rests_spell_on_until_the_name_ends():
    steer = NameSteer("CONTENT_", ("CONTENT_LENGTH", "CONTENT_TYPE", "CONTENT_TYPES"))
    assert steer.rests("") == ("LENGTH", "TYPE", "TYPES")
    assert steer.rests("TY") == ("PE", "PES")
    assert steer.rests("TYPE") == ("", "S")  # whole, or on to the longer one
    assert steer.rests("TYPE)") is None  # the name ended: the model's own text from here
    assert steer.rests("TYPO") is None


def test_the_spelling_mask_is_every_token_that_spells_on(tiny_model: Path):
    """The mask comes from dictionary lookups and binary searches; it must equal the plain
    definition over the whole vocabulary."""
    model = LoadedModel(resolve_model(str(tiny_model)), Settings(model=str(tiny_model)))
    pieces = [model.piece(t) for t in range(model.n_vocab)]
    name_byte = re.compile(rb"[\w$\x80-\xff]")
    try:
        for rests in [("LENGTH", "TYPE"), ("",), ("", "s"), ("ab", "b_c9"), ("é",)]:
            expected = set()
            for t, p in enumerate(pieces):
                for rest in (r.encode() for r in rests):
                    begins = bool(p) and rest.startswith(p)
                    holds = len(p) > len(rest) and p.startswith(rest) and not name_byte.match(
                        p[len(rest):len(rest) + 1])
                    if begins or holds:
                        expected.add(t)
            if "" in rests:
                expected |= {t for t in range(model.n_vocab) if not pieces[t] and
                             model.is_end(t)}
            got = {int(t) for t in model._spelling_mask(rests).nonzero()[0]}
            assert got == expected, rests
    finally:
        model.close()


@pytest.fixture
async def engine(embedded_model):
    eng = Engine(Settings(model=str(embedded_model), typeahead=False, quick_window_lines=0))
    await eng.load()
    yield eng
    await eng.close()


CODE = "from . import hdrs\n\n\ndef body_size(headers):\n    return int(headers[hdrs."


@pytest.mark.parametrize("typed", ["", "zq_", "zq_b"])
async def test_the_suggestion_names_one_of_the_modules_names(engine, typed):
    """Names no model would write on its own: the suggestion is one of them, from what the
    user typed of it, then the model's own text."""
    block = ContextBlock(names=(("hdrs", ("zq_alpha_len", "zq_beta_size")),))
    out = await engine.complete(CompletionInput(CODE + typed, language="python",
                                                max_tokens=12, temperature=0.0,
                                                context=block))
    name = re.match(r"[\w$]*", typed + out.text).group(0)
    assert name in ("zq_alpha_len", "zq_beta_size"), out.text
    if typed == "zq_b":
        assert out.text.startswith("eta_size")
    free = await engine.complete(CompletionInput(CODE + typed, language="python",
                                                 max_tokens=12, temperature=0.0))
    assert not (typed + free.text).startswith(("zq_alpha_len", "zq_beta_size"))


def test_llama_server_gets_the_names_as_a_grammar():
    from helios_lsp.engine.names import gbnf

    assert gbnf(NameSteer("CONTENT_", ("CONTENT_LENGTH", "CONTENT_TYPE"))) == (
        'root ::= ("LENGTH" | "TYPE") ([^a-zA-Z0-9_$\\x00] [^\\x00]*)?')
    # A name already whole may end there, or go on to a longer one.
    assert gbnf(NameSteer("find", ("find", "findAll"))) == (
        'root ::= ("All")? ([^a-zA-Z0-9_$\\x00] [^\\x00]*)?')


@pytest.mark.skipif(find_binary() is None, reason=missing_reason())
async def test_a_real_llama_server_is_kept_on_the_names(embedded_model: Path, tmp_path: Path):
    block = ContextBlock(names=(("hdrs", ("zq_alpha_len", "zq_beta_size")),))
    with LlamaServer(embedded_model, log_path=tmp_path / "ls.log") as srv:
        eng = Engine(Settings(engine="llama-server", engine_url=srv.url, typeahead=False,
                              share=False))
        await eng.load()
        try:
            for typed in ("", "zq_b"):
                out = await eng.complete(CompletionInput(CODE + typed, language="python",
                                                         max_tokens=12, temperature=0.0,
                                                         context=block))
                name = re.match(r"[\w$]*", typed + out.text).group(0)
                assert name in ("zq_alpha_len", "zq_beta_size"), out.text
        finally:
            await eng.close()
