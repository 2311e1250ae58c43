"""The tiny GGUF models from tests/gguf_factory.py load and run in llama.cpp."""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

from tests.gguf_factory import (
    CORRUPT_KINDS,
    FIM_FAMILIES,
    FIM_METADATA_KEYS,
    FIM_TOKENS,
    fim_token_ids,
    token_id,
    vocab_tokens,
    write_corrupt,
    write_tiny_model,
)

CODE = b"def f(x):\n    return x"

# FIM-family tokens llama.cpp (0.3.36) treats as end-of-generation, found by token text.
# StarCoder's "<file_sep>" is not among them (llama.cpp only knows Qwen's "<|file_sep|>").
EOG_ROLES = {"codellama": {"eot"}, "starcoder": set(), "qwen": {"pad", "sep", "eot", "repo"}}


def _load(path) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, verbose=False)


def _vocab(llm: llama_cpp.Llama):
    return llama_cpp.llama_model_get_vocab(llm._model.model)


@pytest.mark.parametrize("fim_metadata", [True, False], ids=["meta", "text-only"])
@pytest.mark.parametrize("fim", [*FIM_FAMILIES, None])
def test_tiny_model_loads_tokenizes_and_evaluates(tmp_path, fim, fim_metadata):
    path = write_tiny_model(tmp_path / "tiny.gguf", fim=fim, fim_metadata=fim_metadata)
    llm = _load(path)
    try:
        assert llm.n_vocab() == len(vocab_tokens(fim))
        assert llm.n_ctx() == 256

        tokens = llm.tokenize(CODE)
        assert tokens[0] == llm.token_bos() == 1
        # real multi-character pieces, not one token per byte
        assert len(tokens) < len(CODE)
        assert token_id(path, "▁def") in tokens
        # SPM adds a space prefix ("▁def"); detokenize drops it again after a BOS
        assert llm.detokenize(tokens) == CODE
        assert llm.detokenize(tokens[1:]) == b" " + CODE

        llm.eval(tokens)
        # without logits_all, Llama.eval leaves llm.scores at zero: read llama.cpp's buffer
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()
        assert np.isfinite(logits).all()
        assert logits.std() > 0

        ids = fim_token_ids(fim)
        for role, text in (FIM_TOKENS[fim] if fim else {}).items():
            assert token_id(path, text) == ids[role]
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == [ids[role]]
            assert len(llm.tokenize(text.encode(), add_bos=False, special=False)) > 1

        meta_keys = set(FIM_METADATA_KEYS.values()) & set(llm.metadata)
        if fim is not None and fim_metadata:
            for role, key in FIM_METADATA_KEYS.items():
                assert llm.metadata[key] == str(ids[role])
        else:
            assert not meta_keys

        # llama.cpp's own FIM detection: from the metadata, else by token text
        vocab = _vocab(llm)
        null = llama_cpp.LLAMA_TOKEN_NULL
        assert llama_cpp.llama_vocab_fim_pre(vocab) == ids.get("pre", null)
        assert llama_cpp.llama_vocab_fim_suf(vocab) == ids.get("suf", null)
        assert llama_cpp.llama_vocab_fim_mid(vocab) == ids.get("mid", null)
        for role, tid in ids.items():
            assert llama_cpp.llama_vocab_is_eog(vocab, tid) == (role in EOG_ROLES.get(fim, ()))
    finally:
        llm.close()


def test_any_utf8_text_round_trips(tmp_path):
    llm = _load(write_tiny_model(tmp_path / "tiny.gguf", fim="qwen"))
    try:
        text = "naïve café — 世界 🚀\t\x00\r\n<|fim_prefix|> <PRE>\n".encode()
        tokens = llm.tokenize(text)
        assert llm.detokenize(tokens) == text
        out = llm.create_completion("def f(x):", max_tokens=4, temperature=0.0)
        assert out["usage"]["completion_tokens"] <= 4
    finally:
        llm.close()


def test_same_seed_same_file(tmp_path):
    a = write_tiny_model(tmp_path / "a.gguf", seed=3).read_bytes()
    b = write_tiny_model(tmp_path / "b.gguf", seed=3).read_bytes()
    c = write_tiny_model(tmp_path / "c.gguf", seed=4).read_bytes()
    assert a == b != c


@pytest.mark.parametrize("kind", CORRUPT_KINDS)
def test_corrupt_files_are_refused(tmp_path, kind):
    path = write_corrupt(tmp_path / f"{kind}.gguf", kind)
    with pytest.raises(ValueError):
        _load(path)
