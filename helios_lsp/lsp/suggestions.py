"""From a document and a cursor to the engine's input, and from a suggestion to LSP items.

No completion logic lives here (the engine decides what to suggest and cleans it): this
module only turns positions into text offsets and back, and shapes the items.

The engine turns every line break it is given into "\\n" (engine/text.py); a suggestion for
a CRLF (or CR) document is given the document's own line break before it goes back to the
editor. Offsets and positions are the document's own (documents.py handles CR LF there).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from lsprotocol import types

from helios_lsp.engine import CompletionInput
from helios_lsp.lsp.config import ClientConfig
from helios_lsp.lsp.documents import TextDocument

LABEL_PREFIX = "✦ Helios: "
LABEL_WIDTH = 60


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a suggestion goes: the engine's input and the range the item replaces.

    `lead` is text already in the document (or in the selected completion) that the item
    re-inserts before the suggestion, because its range starts before the cursor."""

    inp: CompletionInput
    range: types.Range
    lead: str
    eol: str

    def text(self, suggestion: str) -> str:
        """The item's full text for the editor, with the document's line breaks."""
        text = self.lead + suggestion
        return text if self.eol == "\n" else text.replace("\n", self.eol)


def filename_of(uri: str) -> str:
    return posixpath.basename(unquote(urlparse(uri).path))


def _engine_text(text: str) -> str:
    """An unpaired surrogate (JSON allows "\\ud800", editors send it) becomes U+FFFD: the
    tokenizer cannot encode it. (HTTP refuses such text; the LSP must not fail a keystroke.)"""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _input(doc: TextDocument, prefix: str, suffix: str, config: ClientConfig,
           name: str | None) -> CompletionInput:
    return CompletionInput(
        prefix=_engine_text(prefix),
        suffix=_engine_text(suffix),
        language=doc.language_id,
        filename=name or filename_of(doc.uri),
        max_tokens=config.max_tokens,
        temperature=config.temperature,
    )


def _word_start(text: str, offset: int) -> int:
    """Start of the identifier that ends at `offset` (what an editor filters its menu by)."""
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    return start


def inline_placement(
    doc: TextDocument,
    position: types.Position,
    encoding: str,
    config: ClientConfig,
    selected: types.SelectedCompletionInfo | None = None,
    name: str | None = None,
) -> Placement:
    """For textDocument/inlineCompletion: the range is the cursor itself, or, while the
    editor's completion menu has an item selected, that item's range (LSP 3.18: the inline
    suggestion must then extend the selected item). `name`: the document's path in its
    workspace folder (the file name when None)."""
    text = doc.text
    offset = doc.offset_at(position, encoding)
    start = end = offset
    lead = ""
    if selected is not None:
        start = doc.offset_at(selected.range.start, encoding)
        end = max(start, doc.offset_at(selected.range.end, encoding))
        if start <= offset <= end:
            lead = selected.text
        else:  # a selected item away from the cursor: ignore it
            start = end = offset
    rng = types.Range(start=doc.position_at(start, encoding), end=doc.position_at(end, encoding))
    inp = _input(doc, text[:start] + lead, text[end:], config, name)
    return Placement(inp, rng, lead, doc.eol)


def completion_placement(
    doc: TextDocument, position: types.Position, encoding: str, config: ClientConfig,
    name: str | None = None,
) -> Placement:
    """For textDocument/completion: the item replaces the word before the cursor (and
    re-inserts it), so editors that filter their menu by that word keep the item."""
    offset = doc.offset_at(position, encoding)
    start = _word_start(doc.text, offset)
    rng = types.Range(start=doc.position_at(start, encoding),
                      end=doc.position_at(offset, encoding))
    inp = _input(doc, doc.text[:offset], doc.text[offset:], config, name)
    return Placement(inp, rng, doc.text[start:offset], doc.eol)


def inline_items(placement: Placement, suggestion: str) -> types.InlineCompletionList:
    if not suggestion:
        return types.InlineCompletionList(items=[])
    item = types.InlineCompletionItem(insert_text=placement.text(suggestion),
                                      range=placement.range)
    return types.InlineCompletionList(items=[item])


def _label(text: str) -> str:
    first = text.strip().split("\n", 1)[0].rstrip("\r").strip()
    if "\n" in text.strip():
        first += " …"
    if len(first) > LABEL_WIDTH:
        first = first[: LABEL_WIDTH - 1] + "…"
    return LABEL_PREFIX + first


def completion_items(
    placement: Placement, suggestion: str, *, model_name: str | None = None,
    markdown: bool = False,
) -> types.CompletionList:
    """One item carrying the suggestion as a text edit. `isIncomplete` is always set, so
    the editor asks again as the user types instead of filtering a stale suggestion."""
    if not suggestion:
        return types.CompletionList(is_incomplete=True, items=[])
    text = placement.text(suggestion)
    multiline = "\n" in suggestion
    language = placement.inp.language or ""
    shown = placement.lead + suggestion
    documentation: str | types.MarkupContent = types.MarkupContent(
        kind=types.MarkupKind.Markdown, value=f"```{language}\n{shown}\n```",
    ) if markdown else shown
    item = types.CompletionItem(
        label=_label(shown),
        label_details=types.CompletionItemLabelDetails(description="Helios"),
        kind=types.CompletionItemKind.Snippet if multiline else types.CompletionItemKind.Text,
        detail=f"Helios · {model_name}" if model_name else "Helios",
        documentation=documentation,
        # What the user has typed of the word, then the suggestion: the editor's filter
        # (by the word before the cursor) keeps the item.
        filter_text=shown,
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
        insert_text_mode=types.InsertTextMode.AsIs,
        text_edit=types.TextEdit(range=placement.range, new_text=text),
    )
    return types.CompletionList(is_incomplete=True, items=[item])
