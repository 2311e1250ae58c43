"""Fill-in-the-middle tokens: found in the GGUF metadata or by the known token texts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FimTokens:
    family: str
    prefix: int
    suffix: int
    middle: int
    stop: tuple[int, ...] = ()  # end-of-middle / file-separator tokens beyond the model's EOG set
    # Repository-level tokens (Qwen2.5-Coder `<|repo_name|>` / `<|file_sep|>`, StarCoder2
    # `<repo_name>` / `<file_sep>`): other files go in the prompt as the model was trained.
    repo: int | None = None
    file_sep: int | None = None


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    prefix: str
    suffix: str
    middle: str
    stop: tuple[str, ...]
    repo: str | None = None
    file_sep: str | None = None


FAMILIES: tuple[_Family, ...] = (
    _Family("codellama", "<PRE>", "<SUF>", "<MID>", ("<EOT>",)),
    _Family("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>",
            ("<|endoftext|>", "<file_sep>"), "<repo_name>", "<file_sep>"),
    _Family("qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
            ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|file_separator|>"),
            "<|repo_name|>", "<|file_sep|>"),
    _Family("deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
            ("<｜end▁of▁sentence｜>", "<|EOT|>")),
)

# Metadata keys, newest first (older GGUFs used prefix/suffix/middle).
_META_KEYS = (
    ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
     "tokenizer.ggml.fim_mid_token_id"),
    ("tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id",
     "tokenizer.ggml.middle_token_id"),
)
_META_STOP_KEYS = ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.fim_pad_token_id",
                   "tokenizer.ggml.fim_sep_token_id")
_META_REPO_KEYS = ("tokenizer.ggml.fim_rep_token_id", "tokenizer.ggml.fim_sep_token_id")


def _int(value: object) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def detect_fim(
    metadata: Mapping[str, object],
    single_token: Callable[[str], int | None],
    token_text: Callable[[int], str],
) -> FimTokens | None:
    """FIM tokens of a model, or None when it has none.

    `single_token(text)` is the id `text` tokenizes to when it is one special token;
    `token_text(id)` the text of a token id.
    """
    def stops(family: _Family | None) -> tuple[int, ...]:
        found = [_int(metadata.get(k)) for k in _META_STOP_KEYS]
        if family is not None:
            found += [single_token(t) for t in family.stop]
        return tuple(dict.fromkeys(t for t in found if t is not None))

    def repo_tokens(family: _Family | None) -> tuple[int | None, int | None]:
        """Both repository-level tokens, or neither (one alone is no known layout)."""
        repo, sep = (_int(metadata.get(k)) for k in _META_REPO_KEYS)
        if (repo is None or sep is None) and family is not None and family.repo:
            repo, sep = single_token(family.repo), single_token(family.file_sep or "")
        return (repo, sep) if repo is not None and sep is not None else (None, None)

    for keys in _META_KEYS:
        ids = [_int(metadata.get(k)) for k in keys]
        if all(i is not None for i in ids):
            pre, suf, mid = ids
            texts = token_text(pre)
            family = next((f for f in FAMILIES if f.prefix == texts), None)
            return FimTokens(family.name if family else "gguf", pre, suf, mid, stops(family),
                             *repo_tokens(family))

    for family in FAMILIES:
        ids = [single_token(t) for t in (family.prefix, family.suffix, family.middle)]
        if all(i is not None for i in ids):
            pre, suf, mid = ids
            return FimTokens(family.name, pre, suf, mid, stops(family), *repo_tokens(family))
    return None
