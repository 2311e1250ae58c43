"""Keeping `module.` on the names the module offers.

Right after `hdrs.` (or `hdrs.CONT`) the user writes one of the names `hdrs` defines. The
context block carries them (ContextBlock.names, from the modules bound near the cursor
whose names can all be known); decoding is then kept on them: each token must spell on
towards one of them until the name is whole, so the model chooses among the real names
instead of inventing one (`TRUNCATION_FOOTER_LINES` where the module has `..._CHARS`).
What comes after the name is the model's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helios_lsp.engine.types import ContextBlock

# `alias.` or `alias.partial` at the cursor; `a.alias.` is an attribute of something else.
_AT_MEMBER = re.compile(r"(?<![\w$.])([A-Za-z_$][\w$]*)\.([A-Za-z_$][\w$]*)?\Z")
_IDENT_CHARS = re.compile(r"[\w$]*")


@dataclass(frozen=True, slots=True)
class NameSteer:
    """The name being written at the cursor must become one of `names`."""

    typed: str  # the part of the name already before the cursor
    names: tuple[str, ...]  # the names that start with it

    def rests(self, produced: str) -> tuple[str, ...] | None:
        """What may follow `produced` (the text generated so far) to finish a name: ""
        when it already is one. None once the name has ended: steering is over."""
        ident = _IDENT_CHARS.match(produced)
        head = ident.group(0) if ident else ""
        if len(head) < len(produced):
            return None
        word = self.typed + head
        rests = tuple(n[len(word):] for n in self.names if n.startswith(word))
        return rests or None


def steer_for(prefix: str, block: ContextBlock | None) -> NameSteer | None:
    """The steer for a cursor right after `alias.` when the block knows alias's names."""
    if block is None or not block.names:
        return None
    at = _AT_MEMBER.search(prefix[-200:])
    if at is None:
        return None
    alias, typed = at.group(1), at.group(2) or ""
    for name, offered in block.names:
        if name == alias:
            names = tuple(n for n in offered if n.startswith(typed))
            return NameSteer(typed, names) if names else None
    return None


def gbnf(steer: NameSteer) -> str:
    """The steer as a GBNF grammar, for engine servers that take one (llama-server): one
    of the names (from what is typed), then anything that does not continue it."""
    rests = steer.rests("") or ("",)
    alternatives = " | ".join(f'"{rest}"' for rest in rests if rest)
    names = f"({alternatives})" + ("?" if "" in rests else "")
    return f"root ::= {names} ([^a-zA-Z0-9_$\\x00] [^\\x00]*)?"
