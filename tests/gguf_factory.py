"""Tiny GGUF models (and broken GGUF files) for fast tests.

``write_tiny_model`` writes a llama-architecture model with a few layers, a few dozen
dimensions and seeded random weights. llama.cpp loads it in milliseconds and can evaluate it;
its output is noise, so tests should check mechanics (loading, tokenization, FIM detection,
prompt budgets, cancellation), never the quality of a completion.

The vocabulary is a SentencePiece ("llama") vocabulary with byte fallback, so any UTF-8 text
tokenizes:

====================  ==================================================================
ids                   tokens
====================  ==================================================================
0, 1, 2               ``<unk>`` (UNKNOWN), ``<s>`` (BOS, CONTROL), ``</s>`` (EOS, CONTROL)
3 .. 258              byte tokens ``<0x00>`` .. ``<0xFF>`` (BYTE)
259 ..                ``▁`` and the printable ASCII characters, then multi-character code
                      pieces ("▁def", "▁return", "▁▁▁▁", "():", ...) with their prefixes
``FIM_BASE_ID`` ..    the FIM tokens of the chosen family (CONTROL), in ``FIM_TOKENS`` order
====================  ==================================================================

The ids do not depend on the FIM family except for the FIM tokens themselves, and those always
start at ``FIM_BASE_ID``. ``fim_token_ids(fim)`` gives role -> id, ``token_id(...)`` looks up any
token text in a written file or in a ``vocab_tokens(fim)`` list.

``write_corrupt`` writes files llama.cpp must refuse: see ``CORRUPT_KINDS``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from gguf import GGUFReader, GGUFWriter, Keys, LlamaFileType, TokenType

__all__ = [
    "CORRUPT_KINDS",
    "FIM_BASE_ID",
    "FIM_FAMILIES",
    "FIM_METADATA_KEYS",
    "FIM_TOKENS",
    "fim_token_ids",
    "token_id",
    "vocab_tokens",
    "write_corrupt",
    "write_tiny_model",
]

# role -> token text, per family. Roles: pre/suf/mid (the FIM triple), plus the extras each
# family ships: eot (end of infill), pad, sep (file separator), repo (repository name).
# Dict order = id order.
FIM_TOKENS: dict[str, dict[str, str]] = {
    "codellama": {"pre": "<PRE>", "suf": "<SUF>", "mid": "<MID>", "eot": "<EOT>"},
    "starcoder": {
        "pre": "<fim_prefix>",
        "suf": "<fim_suffix>",
        "mid": "<fim_middle>",
        "sep": "<file_sep>",
        "repo": "<repo_name>",
    },
    "qwen": {
        "pre": "<|fim_prefix|>",
        "suf": "<|fim_suffix|>",
        "mid": "<|fim_middle|>",
        "pad": "<|fim_pad|>",
        "sep": "<|file_sep|>",
        "eot": "<|endoftext|>",
        "repo": "<|repo_name|>",
    },
    "deepseek": {"pre": "<｜fim▁begin｜>", "suf": "<｜fim▁hole｜>", "mid": "<｜fim▁end｜>"},
}
FIM_FAMILIES: tuple[str, ...] = tuple(FIM_TOKENS)

# GGUF metadata keys written for the FIM triple when ``fim_metadata=True``.
FIM_METADATA_KEYS: dict[str, str] = {
    "pre": Keys.Tokenizer.FIM_PRE_ID,  # "tokenizer.ggml.fim_pre_token_id"
    "suf": Keys.Tokenizer.FIM_SUF_ID,  # "tokenizer.ggml.fim_suf_token_id"
    "mid": Keys.Tokenizer.FIM_MID_ID,  # "tokenizer.ggml.fim_mid_token_id"
}

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPACE = "\u2581"  # "▁": SentencePiece's marker for a space

CORRUPT_KINDS: tuple[str, ...] = ("truncated", "bad_magic", "random_tail", "empty", "text")

# Multi-character pieces, written with real spaces (turned into "▁" below). Every prefix of
# length >= 2 is added too: llama.cpp's SPM tokenizer builds a piece by merging adjacent
# symbols whose concatenation is in the vocabulary, so a piece is reachable only through
# pieces that are themselves tokens.
# fmt: off
_CODE_PIECES: tuple[str, ...] = (
    " def", "def", " return", "return", " self", "self", " import", "import", " from",
    " class", "class", " if", "if", " else", " elif", " for", " in", " is", " not", " and",
    " or", " None", " True", " False", " print", " pass", " lambda", " yield", " async",
    " await", " function", " const", " let", " var", " int", " str", " x", " y", " i",
    "    ", "        ", "  ", "\n    ", "\n        ", "\n\n",
    "():", "()", "(self", "):", ")\n", " = ", " == ", " != ", " -> ", " += ", ", ",
    "\"\"\"", "''", "//", "/*", "*/", "{}", "[]", " {", " }", "#", "__init__", "__",
)
# fmt: on


def _spm(text: str) -> str:
    return text.replace(" ", SPACE)


def _base_vocab() -> list[tuple[str, float, int]]:
    """(text, score, type) for every non-FIM token, in id order."""
    vocab: list[tuple[str, float, int]] = [
        ("<unk>", 0.0, TokenType.UNKNOWN),
        ("<s>", 0.0, TokenType.CONTROL),
        ("</s>", 0.0, TokenType.CONTROL),
    ]
    vocab += [(f"<0x{b:02X}>", 0.0, TokenType.BYTE) for b in range(256)]
    singles = [SPACE] + [chr(c) for c in range(0x21, 0x7F)]
    prefixes = {
        piece[:n] for piece in (_spm(p) for p in _CODE_PIECES) for n in range(2, len(piece) + 1)
    }
    pieces = singles + sorted(prefixes, key=lambda s: (len(s), s))
    # Higher score merges first: short pieces before long ones, like real SPM vocabularies.
    vocab += [(text, -float(i), TokenType.NORMAL) for i, text in enumerate(pieces)]
    assert len({t for t, _, _ in vocab}) == len(vocab), "duplicate token text"
    return vocab


_BASE_VOCAB = _base_vocab()
FIM_BASE_ID: int = len(_BASE_VOCAB)


def _check_fim(fim: str | None) -> None:
    if fim is not None and fim not in FIM_TOKENS:
        raise ValueError(f"unknown FIM family {fim!r}; expected one of {FIM_FAMILIES} or None")


def vocab_tokens(fim: str | None = "codellama") -> list[str]:
    """The token texts (index = id) of a tiny model with this FIM family."""
    _check_fim(fim)
    texts = [t for t, _, _ in _BASE_VOCAB]
    if fim is not None:
        texts += list(FIM_TOKENS[fim].values())
    return texts


def fim_token_ids(fim: str | None) -> dict[str, int]:
    """Role ("pre", "suf", "mid", and "eot"/"pad"/"sep" where present) -> token id."""
    _check_fim(fim)
    if fim is None:
        return {}
    return {role: FIM_BASE_ID + i for i, role in enumerate(FIM_TOKENS[fim])}


def token_id(path_or_vocab: str | os.PathLike[str] | Sequence[str], text: str) -> int:
    """Id of the token whose text is exactly ``text``.

    ``path_or_vocab`` is a GGUF file (str or path) or a list of token texts such as
    ``vocab_tokens("qwen")``. Raises KeyError if there is no such token.
    """
    if isinstance(path_or_vocab, str | os.PathLike):
        field = GGUFReader(path_or_vocab).get_field(Keys.Tokenizer.LIST)
        if field is None:
            raise KeyError(f"{path_or_vocab}: no {Keys.Tokenizer.LIST}")
        tokens: Sequence[str] = field.contents()
    else:
        tokens = path_or_vocab
    try:
        return list(tokens).index(text)
    except ValueError:
        raise KeyError(text) from None


def write_tiny_model(
    path: str | os.PathLike[str],
    *,
    fim: str | None = "codellama",
    fim_metadata: bool = True,
    n_layer: int = 2,
    n_embd: int = 32,
    n_head: int = 4,
    n_head_kv: int | None = None,
    n_ff: int | None = None,
    n_ctx_train: int = 2048,
    seed: int = 0,
    dtype: Literal["f32", "f16"] = "f32",
) -> Path:
    """Write a tiny llama-architecture GGUF model to ``path`` and return the path.

    ``fim`` picks the FIM token family (see ``FIM_TOKENS``) or None for no FIM tokens.
    ``fim_metadata`` also writes ``tokenizer.ggml.fim_{pre,suf,mid}_token_id``; without it only
    the token texts exist, and llama.cpp has to find them by text. ``dtype`` is the type of the
    weight matrices (norm vectors are always F32). The weights are seeded: the same arguments
    give the same file.
    """
    _check_fim(fim)
    if n_embd % n_head or (n_embd // n_head) % 2:
        raise ValueError("n_embd must be a multiple of n_head with an even head size")
    n_head_kv = n_head if n_head_kv is None else n_head_kv
    if n_head % n_head_kv:
        raise ValueError("n_head must be a multiple of n_head_kv")
    n_ff = 2 * n_embd if n_ff is None else n_ff
    head_dim = n_embd // n_head

    vocab = list(_BASE_VOCAB)
    if fim is not None:
        vocab += [(text, 0.0, TokenType.CONTROL) for text in FIM_TOKENS[fim].values()]
    n_vocab = len(vocab)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = GGUFWriter(path, "llama")
    w.add_name(f"helios-tiny-{fim or 'nofim'}")
    w.add_file_type(LlamaFileType.ALL_F32 if dtype == "f32" else LlamaFileType.MOSTLY_F16)
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)

    w.add_tokenizer_model("llama")
    w.add_token_list([t for t, _, _ in vocab])
    w.add_token_scores([s for _, s, _ in vocab])
    w.add_token_types([int(k) for _, _, k in vocab])
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_unk_token_id(UNK_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if fim is not None and fim_metadata:
        ids = fim_token_ids(fim)
        for role, key in FIM_METADATA_KEYS.items():
            w.add_uint32(key, ids[role])

    rng = np.random.default_rng(seed)
    mat_dtype = np.float32 if dtype == "f32" else np.float16

    # numpy shape is (rows, cols) = (out, in); the writer stores ne = reversed shape, which is
    # the {in, out} layout llama.cpp expects (e.g. token_embd {n_embd, n_vocab}).
    def mat(rows: int, cols: int, std: float = 0.02) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * std).astype(mat_dtype)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd))
    for i in range(n_layer):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", ones(n_embd))
        w.add_tensor(b + "attn_q.weight", mat(n_head * head_dim, n_embd))
        w.add_tensor(b + "attn_k.weight", mat(n_head_kv * head_dim, n_embd))
        w.add_tensor(b + "attn_v.weight", mat(n_head_kv * head_dim, n_embd))
        w.add_tensor(b + "attn_output.weight", mat(n_embd, n_head * head_dim))
        w.add_tensor(b + "ffn_norm.weight", ones(n_embd))
        w.add_tensor(b + "ffn_gate.weight", mat(n_ff, n_embd))
        w.add_tensor(b + "ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(b + "ffn_down.weight", mat(n_embd, n_ff))
    w.add_tensor("output_norm.weight", ones(n_embd))
    # A wider output layer so the next-token distribution is not completely flat.
    w.add_tensor("output.weight", mat(n_vocab, n_embd, std=0.5))

    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
    finally:
        w.close()
    return path


# The fixed GGUF header: magic "GGUF", uint32 version, uint64 tensor count, uint64 kv count.
_GGUF_HEADER_SIZE = 4 + 4 + 8 + 8

_LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 98326176\n"
)


def write_corrupt(path: str | os.PathLike[str], kind: str, *, seed: int = 0) -> Path:
    """Write a file that is not a loadable GGUF model to ``path`` and return the path.

    kinds:
      - "truncated": a valid tiny model cut in half (inside the tensor data);
      - "bad_magic": a valid tiny model whose first 4 bytes are b"GGUX" instead of b"GGUF";
      - "random_tail": a valid 24-byte GGUF header (magic, version 3, real tensor and kv
        counts) followed by 4 KiB of seeded random bytes;
      - "empty": 0 bytes;
      - "text": a text file (a git-lfs pointer, the usual text file found under a .gguf name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text(_LFS_POINTER, encoding="ascii")
    elif kind in ("truncated", "bad_magic", "random_tail"):
        data = write_tiny_model(path, fim="codellama", seed=seed).read_bytes()
        if kind == "truncated":
            data = data[: len(data) // 2]
        elif kind == "bad_magic":
            data = b"GGUX" + data[4:]
        else:
            tail = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8)
            data = data[:_GGUF_HEADER_SIZE] + tail.tobytes()
        path.write_bytes(data)
    else:
        raise ValueError(f"unknown corrupt kind {kind!r}; expected one of {CORRUPT_KINDS}")
    return path


def write_aborting_model(path: str | os.PathLike[str], *, block_count: int = 0) -> Path:
    """A tiny model whose header passes every check Helios makes, but whose `block_count`
    (0, or above llama.cpp's 512 layers) trips a GGML_ASSERT: llama.cpp aborts the process
    that loads it (SIGABRT)."""
    from gguf import GGUFReader

    path = write_tiny_model(path, fim="codellama")
    reader = GGUFReader(path, "r+")
    field = reader.fields["llama.block_count"]
    field.parts[field.data[0]][0] = block_count
    del reader  # flushes the memory map
    return path
