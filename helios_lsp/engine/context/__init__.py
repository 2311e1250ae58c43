"""Cross-file context: what of the user's other files goes into the prompt.

Sources: open documents, a background index of the workspace folders and recent edits.
Structure comes from tree-sitter (syntax.py); `ContextSources.select` picks a bounded,
ordered, deterministic tuple of `Snippet`s for one completion. The engine decides when
to ask and how to lay the snippets out.
"""

from helios_lsp.engine.context.secret_names import is_secret
from helios_lsp.engine.context.sources import ContextSources
from helios_lsp.engine.context.types import ContextLimits, ContextQuery, Snippet

__all__ = ["ContextLimits", "ContextQuery", "ContextSources", "Snippet", "is_secret"]
