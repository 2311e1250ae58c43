"""Fill-in-the-middle prompt text for code models served behind an OpenAI-style API.

Such servers take text, so Helios writes the FIM tokens as text in the model family's
order. The cursor's line goes after the middle marker (as llama.vim does): the text before
it stays the same while the user types on a line, and the server's prefix cache hits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from helios_lsp.engine.context_layout import repo_piece
from helios_lsp.engine.types import Snippet


@dataclass(frozen=True, slots=True)
class FimTemplate:
    family: str
    prefix: str
    suffix: str
    middle: str
    stop: tuple[str, ...]
    # Repository-level tokens, for models trained with other files in their prompts.
    repo: str | None = None
    file_sep: str | None = None

    def render(self, above: str, suffix: str, line: str, *, context: Sequence[Snippet] = (),
               repo: str = "", path: str = "") -> str:
        """The FIM prompt; with `context` (only for templates with repository tokens), the
        other files first, then the file's own path, as those models were trained."""
        head = ""
        if context and self.repo and self.file_sep:
            name = repo.replace("\n", " ").strip() or "project"
            head = (f"{self.repo}{name}\n"
                    + "".join(self.file_sep + repo_piece(s) for s in context)
                    + f"{self.file_sep}{path.replace(chr(10), ' ')}\n")
        return f"{head}{self.prefix}{above}{self.suffix}{suffix}{self.middle}{line}"


TEMPLATES: dict[str, FimTemplate] = {t.family: t for t in (
    # CodeLlama 7B/13B base and -code models (not 34B, not -Python).
    FimTemplate("codellama", "<PRE> ", " <SUF>", " <MID>", ("<EOT>",)),
    FimTemplate("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>",
                ("<|endoftext|>", "<file_sep>"), "<repo_name>", "<file_sep>"),
    FimTemplate("qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
                ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>"), "<|repo_name|>",
                "<|file_sep|>"),
    FimTemplate("deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
                ("<｜end▁of▁sentence｜>", "<|EOT|>")),
    FimTemplate("codegemma", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
                ("<|file_separator|>",)),
)}

# Model names as Ollama, vLLM, LM Studio and Hugging Face spell them, first match wins.
_BY_NAME: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"smollm2"), None),  # SmolLM2 has no FIM tokens
    (re.compile(r"code-?llama|codellama"), "codellama"),
    (re.compile(r"starcoder|smollm"), "starcoder"),
    (re.compile(r"qwen[\d.]*-?coder"), "qwen"),
    (re.compile(r"deepseek-?coder"), "deepseek"),
    (re.compile(r"codegemma"), "codegemma"),
)


def template_for(model_name: str, setting: str | None) -> tuple[FimTemplate | None, str]:
    """The template to use, and why: `setting` (HELIOS_FIM_TEMPLATE) wins over the name."""
    if setting is not None:
        if setting == "none":
            return None, "HELIOS_FIM_TEMPLATE=none"
        return TEMPLATES[setting], f"HELIOS_FIM_TEMPLATE={setting}"
    name = model_name.lower()
    for pattern, family in _BY_NAME:
        if pattern.search(name):
            if family is None:
                return None, f"the model name {model_name!r} names a model without FIM"
            return TEMPLATES[family], f"detected from the model name {model_name!r}"
    return None, f"no FIM template known for the model name {model_name!r}"
