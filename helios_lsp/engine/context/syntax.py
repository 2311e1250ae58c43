"""What tree-sitter tells about a file: definitions, an outline, imports, retrieval chunks.

One set of node walks serves all the grammars; the tables below say, per grammar, which
node types are definitions, which hold members, which only wrap another definition.
HTML, CSS and JSON have no definitions or imports: they are only chunked.

Parsing holds the GIL, so `parse` feeds tree-sitter through callbacks and yields the
GIL from its progress callback: an asyncio loop in the same process keeps running while
a large file is parsed in another thread.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache

import tree_sitter
import tree_sitter_language_pack

from helios_lsp.engine.context import tokens

# Grammars the library parses, by the names tree-sitter-language-pack gives them.
GRAMMARS = (
    "python",
    "javascript",
    "typescript",
    "tsx",
    "java",
    "cpp",
    "c",
    "go",
    "rust",
    "html",
    "css",
    "json",
)

CHUNK_LINES = 50  # retrieval chunks are cut at definitions and hold at most this many lines
_LONG = 60  # a definition longer than this is split (at its members when it has any)
_STANDALONE = 10  # definitions this long or longer are chunks of their own
_SIGNATURE_LINES = 8  # a header longer than this is cut
_MEMBERS = 60  # members listed per container in an outline
_DEPTH = 3  # containers nested deeper than this show their header only
_READ_SLICE = 16 << 10  # bytes handed to tree-sitter per read
_YIELD_SECONDS = 0.002  # the GIL is offered to other threads at least this often
PIECE_BYTES = 32 << 10  # large files are parsed in pieces of about this size


@dataclass(frozen=True, slots=True)
class Definition:
    """A function, class, type, constant... with its header (`signature`) as whole lines."""

    name: str
    kind: str  # function | method | class | struct | interface | enum | trait | impl | type
    #            | const | field | macro | namespace | module
    start: int  # first line (0-based), decorators, attributes and templates included
    end: int  # last line, inclusive
    signature: str  # the header lines up to the body, each ending in "\n"
    members: tuple[Definition, ...] = ()
    closing: str = ""  # a container's closing line ("}\n") in brace languages

    def walk(self) -> Iterator[Definition]:
        yield self
        for member in self.members:
            yield from member.walk()


@dataclass(frozen=True, slots=True)
class Import:
    """One import of a file: the modules it may name, most specific first, and the local
    names it binds (`from . import tasks` binds "tasks", `import numpy as np` binds "np")."""

    modules: tuple[str, ...]
    names: tuple[str, ...]
    line: int
    # What `names` are bound to: "module" the module itself (`import x as y`,
    # `const x = require('./x')`, `import * as x`), "either" a submodule or a member as the
    # files decide (Python's `from p import x`), "names" what the module defines.
    binds: str = "names"


@dataclass(frozen=True, slots=True)
class FileSyntax:
    grammar: str
    line_count: int
    definitions: tuple[Definition, ...]
    imports: tuple[Import, ...]
    chunks: tuple[tuple[int, int], ...]  # (first line, last line), inclusive, in file order
    has_error: bool = False

    def outline(self, max_chars: int | None = None, near: Collection[str] = ()) -> str:
        return render_outline(self.definitions, max_chars, near)


# --- parsing -------------------------------------------------------------------------

_local = threading.local()


def _first_named(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """A node's first named child, or None (named_child raises on a node without any, as
    an empty body is while the user types it)."""
    return node.named_child(0) if node.named_child_count else None


@cache  # one Language per grammar
def language(grammar: str) -> tree_sitter.Language:
    return tree_sitter_language_pack.get_language(grammar)  # type: ignore[arg-type]


def _parser(grammar: str) -> tree_sitter.Parser:
    # Parsers are not thread-safe: one per thread and grammar.
    parsers: dict[str, tree_sitter.Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(grammar)
    if parser is None:
        parser = parsers[grammar] = tree_sitter.Parser(language(grammar))
    return parser


def maybe_yield() -> None:
    """Let other threads (the asyncio loop) take the GIL if this one has held it for a
    while. Yielding at every call would cost more: sleep(0) is a system call."""
    now = time.perf_counter()
    if now - getattr(_local, "yielded", 0.0) >= _YIELD_SECONDS:
        time.sleep(0)
        _local.yielded = time.perf_counter()


def _progress(_offset: int, _has_error: bool) -> bool:
    maybe_yield()
    return False  # never cancel


def parse(
    source: bytes,
    grammar: str,
    old_tree: tree_sitter.Tree | None = None,
    byte_range: tuple[int, int] | None = None,
) -> tree_sitter.Tree:
    """Parse UTF-8 bytes (or only `byte_range` of them: positions stay the file's).
    With `old_tree` (already `edit`ed) only the change is reparsed.

    tree-sitter reads the source through a callback, so that its progress callback can
    yield the GIL. py-tree-sitter 0.26 keeps a reference to every object that callback
    returns, so it always returns the same per-thread buffer, refilled at each call;
    the parser's included range ends the text where the source (or the range) ends.
    """
    start, end = byte_range if byte_range is not None else (0, len(source))
    buffer = _buffer()
    parser = _parser(grammar)
    parser.included_ranges = [
        tree_sitter.Range(_byte_point(source, start), _byte_point(source, end), start, end)
    ]

    def read(offset: int, _point: object) -> bytes | bytearray:
        if offset >= end:
            return b""
        piece = source[offset : min(offset + _READ_SLICE, end)]
        buffer[: len(piece)] = piece  # same length or shorter: never resized
        return buffer

    if old_tree is None:
        return parser.parse(read, progress_callback=_progress)
    return parser.parse(read, old_tree, progress_callback=_progress)


def _byte_point(source: bytes, offset: int) -> tuple[int, int]:
    line_start = source.rfind(b"\n", 0, offset) + 1
    return source.count(b"\n", 0, offset), offset - line_start


def pieces(source: bytes, max_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of at most max_bytes that cover `source`, cut where a top-level
    statement likely starts (a line at column 0 after a blank line), else at a line end.
    A large file is parsed a piece at a time: no single call into tree-sitter (parse,
    or freeing the tree) then holds the GIL for long."""
    n = len(source)
    out = []
    start = 0
    while n - start > max_bytes:
        low, limit = start + max_bytes // 4, start + max_bytes
        cut = None
        pos = source.rfind(b"\n\n", low, limit)
        while pos != -1:
            if source[pos + 2 : pos + 3] not in (b" ", b"\t", b"\r", b"\n", b""):
                cut = pos + 2
                break
            pos = source.rfind(b"\n\n", low, pos)
        if cut is None:
            newline = source.rfind(b"\n", start, limit - 1)
            cut = newline + 1 if newline >= start else limit
        out.append((start, cut))
        start = cut
    out.append((start, n))
    return out


def _buffer() -> bytearray:
    buffer: bytearray | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(_READ_SLICE)
    return buffer


def split_lines(text: str) -> list[str]:
    """Lines as tree-sitter counts them (at "\\n"), each ending in "\\n", without "\\r"."""
    if not text:
        return []
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [(p[:-1] if p.endswith("\r") else p) + "\n" for p in parts]


def _last_row(node: tree_sitter.Node) -> int:
    """The last line a node covers (a node ending at column 0 ends on the line before)."""
    end_row, end_col = node.end_point
    start_row = node.start_point[0]
    if end_col == 0 and end_row > start_row:
        return end_row - 1
    return end_row


# --- per-grammar tables ----------------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    defs: dict[str, str]  # node type -> kind
    containers: frozenset[str]  # defs whose body lists members
    scopes: frozenset[str] = frozenset()  # namespaces/modules: their members are top-level items
    transparent: frozenset[str] = frozenset()  # blocks whose children are top-level items
    wrappers: frozenset[str] = frozenset()  # export/decorator/template around a definition
    member_defs: dict[str, str] = field(default_factory=dict)
    prefix_siblings: frozenset[str] = frozenset()  # Rust attributes above an item
    colon_body: bool = False  # Python: the header ends at the ":" before the body
    braces: bool = True


_JS_DEFS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "type_alias_declaration": "type",
    "enum_declaration": "enum",
    "lexical_declaration": "const",
    "variable_declaration": "const",
    "internal_module": "namespace",
    "module": "namespace",
}
_JS = _Rules(
    defs=_JS_DEFS,
    containers=frozenset(
        {
            "class_declaration",
            "abstract_class_declaration",
            "interface_declaration",
            "enum_declaration",
        }
    ),
    scopes=frozenset({"internal_module", "module"}),
    wrappers=frozenset({"export_statement", "ambient_declaration", "expression_statement"}),
    member_defs={
        "method_definition": "method",
        "method_signature": "method",
        "abstract_method_signature": "method",
    },
)
_JS_FUNCTIONS = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function"}
)
_C_DEFS = {
    "function_definition": "function",
    "declaration": "const",
    "struct_specifier": "struct",
    "union_specifier": "struct",
    "enum_specifier": "enum",
    "type_definition": "type",
    "preproc_def": "macro",
    "preproc_function_def": "macro",
}
_C_TRANSPARENT = frozenset(
    {"preproc_ifdef", "preproc_if", "preproc_else", "preproc_elif", "preproc_elifdef"}
)
_C = _Rules(
    defs=_C_DEFS,
    containers=frozenset(
        {"struct_specifier", "union_specifier", "enum_specifier", "type_definition"}
    ),
    transparent=_C_TRANSPARENT,
    member_defs={"function_definition": "method"},
)
_CPP = _Rules(
    defs={
        **_C_DEFS,
        "class_specifier": "class",
        "namespace_definition": "namespace",
        "alias_declaration": "type",
        "concept_definition": "type",
    },
    containers=frozenset(
        {
            "struct_specifier",
            "union_specifier",
            "enum_specifier",
            "type_definition",
            "class_specifier",
        }
    ),
    scopes=frozenset({"namespace_definition", "linkage_specification"}),
    transparent=_C_TRANSPARENT,
    wrappers=frozenset({"template_declaration"}),
    member_defs={"function_definition": "method"},
)

RULES: dict[str, _Rules] = {
    "python": _Rules(
        defs={
            "function_definition": "function",
            "class_definition": "class",
            "assignment": "const",
            "expression_statement": "const",
        },
        containers=frozenset({"class_definition"}),
        wrappers=frozenset({"decorated_definition"}),
        member_defs={"function_definition": "method"},
        colon_body=True,
        braces=False,
    ),
    "javascript": _JS,
    "typescript": _JS,
    "tsx": _JS,
    "java": _Rules(
        defs={
            "class_declaration": "class",
            "record_declaration": "class",
            "interface_declaration": "interface",
            "annotation_type_declaration": "interface",
            "enum_declaration": "enum",
        },
        containers=frozenset(
            {
                "class_declaration",
                "record_declaration",
                "interface_declaration",
                "annotation_type_declaration",
                "enum_declaration",
            }
        ),
        member_defs={
            "method_declaration": "method",
            "constructor_declaration": "method",
            "compact_constructor_declaration": "method",
        },
    ),
    "c": _C,
    "cpp": _CPP,
    "go": _Rules(
        defs={
            "function_declaration": "function",
            "method_declaration": "method",
            "type_declaration": "type",
            "const_declaration": "const",
            "var_declaration": "const",
        },
        containers=frozenset({"type_declaration"}),
    ),
    "rust": _Rules(
        defs={
            "function_item": "function",
            "function_signature_item": "function",
            "struct_item": "struct",
            "union_item": "struct",
            "enum_item": "enum",
            "trait_item": "trait",
            "impl_item": "impl",
            "mod_item": "module",
            "const_item": "const",
            "static_item": "const",
            "type_item": "type",
            "macro_definition": "macro",
        },
        containers=frozenset({"struct_item", "union_item", "enum_item", "trait_item", "impl_item"}),
        scopes=frozenset({"mod_item"}),
        member_defs={"function_item": "method", "function_signature_item": "method"},
        prefix_siblings=frozenset({"attribute_item"}),
    ),
}

_COMMENTS = frozenset({"comment", "line_comment", "block_comment", "doc_comment"})
_NAME_TYPES = frozenset(
    {
        "identifier",
        "field_identifier",
        "type_identifier",
        "property_identifier",
        "qualified_identifier",
        "destructor_name",
        "operator_name",
        "namespace_identifier",
    }
)


def _text(src: bytes, node: tree_sitter.Node | None) -> str:
    # node.text is unusable: trees parsed through a read callback do not hold the source.
    if node is None:
        return ""
    return src[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _is_docstring(node: tree_sitter.Node) -> bool:
    # Python grammars differ on whether a bare string is wrapped in an expression_statement.
    if node.type == "expression_statement" and node.named_child_count == 1:
        node = _first_named(node) or node
    return node.type == "string"


def _name_of(src: bytes, node: tree_sitter.Node) -> str:
    named = node.child_by_field_name("name")
    if named is not None:
        return _text(src, named)
    t = node.type
    if t == "impl_item":
        trait, of = node.child_by_field_name("trait"), node.child_by_field_name("type")
        return f"{_text(src, trait)} for {_text(src, of)}" if trait is not None else _text(src, of)
    if t in ("assignment", "expression_statement"):
        target = node if t == "assignment" else _first_named(node)
        if target is not None and target.type == "assignment":
            return _text(src, target.child_by_field_name("left"))
        return ""
    for child in node.named_children:
        if child.type in ("variable_declarator", "type_spec", "const_spec", "var_spec"):
            return _text(src, child.child_by_field_name("name"))
        if child.type in ("var_spec_list", "const_spec_list"):
            return _name_of(src, child)
    # C/C++: the name sits at the bottom of a chain of declarators.
    decl = node.child_by_field_name("declarator")
    while decl is not None:
        if decl.type in _NAME_TYPES:
            return _text(src, decl)
        inner = decl.child_by_field_name("declarator")
        if inner is None:
            for child in decl.named_children:
                if child.type in _NAME_TYPES:
                    return _text(src, child)
        decl = inner
    for child in node.named_children:
        if child.type in _NAME_TYPES:
            return _text(src, child)
    return ""


# --- definitions -----------------------------------------------------------------------


class _Extractor:
    def __init__(self, grammar: str, lines: Sequence[str], src: bytes):
        self.src = src
        self.rules = RULES[grammar]
        self.grammar = grammar
        self.lines = lines

    def lines_text(self, first: int, last: int) -> str:
        return "".join(self.lines[first : last + 1])

    # The body that lists a container's members, or a function's code.
    def body(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        t = node.type
        if t == "type_declaration":  # Go: type T struct {...} / interface {...}
            for spec in node.named_children:
                if spec.type == "type_spec":
                    typ = spec.child_by_field_name("type")
                    if typ is not None and typ.type == "struct_type":
                        return next(
                            (c for c in typ.named_children if c.type == "field_declaration_list"),
                            None,
                        )
                    if typ is not None and typ.type == "interface_type":
                        return typ
            return None
        if t == "type_definition":  # C: typedef struct {...} name;
            typ = node.child_by_field_name("type")
            return typ.child_by_field_name("body") if typ is not None else None
        if t in ("lexical_declaration", "variable_declaration"):
            value = self._function_value(node)
            return value.child_by_field_name("body") if value is not None else None
        return node.child_by_field_name("body")

    def _function_value(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        """`const f = (a) => {...}`: the function a declaration holds."""
        declarators = [c for c in node.named_children if c.type == "variable_declarator"]
        if len(declarators) != 1:
            return None
        value = declarators[0].child_by_field_name("value")
        if value is not None and value.type in _JS_FUNCTIONS:
            return value
        return None

    def header_end(self, node: tree_sitter.Node, body: tree_sitter.Node | None) -> int:
        last = _last_row(node)
        if body is None or body.start_point[0] > last:
            # No body: a declaration, a constant. Short ones whole, long ones by first line.
            start = node.start_point[0]
            return last if last - start < 2 else start
        if self.rules.colon_body:
            colon = body.prev_sibling
            return colon.end_point[0] if colon is not None else body.start_point[0]
        if body.type == "interface_type":  # Go: the "{" follows the keyword
            return body.start_point[0]
        return body.start_point[0]

    def signature(self, start: int, node: tree_sitter.Node, body: tree_sitter.Node | None) -> str:
        end = max(self.header_end(node, body), start)
        end = min(end, start + _SIGNATURE_LINES - 1)
        text = self.lines_text(start, end)
        if (
            self.rules.colon_body
            and body is not None
            and node.type
            in (
                "function_definition",
                "class_definition",
            )
        ):
            text += self._docstring_line(body, end)
        return text

    def _docstring_line(self, body: tree_sitter.Node, header_end: int) -> str:
        # (an empty body, as while the user types one, has no child at all)
        first = _first_named(body)
        if first is None or not _is_docstring(first):
            return ""
        row = first.start_point[0]
        if row <= header_end or row >= len(self.lines):
            return ""
        line = self.lines[row]
        # A docstring cut after its first line is closed, so the outline stays valid Python.
        body = line.strip().lstrip("rRuUbBfF")
        for quote in ('"""', "'''"):
            if body.startswith(quote) and body.count(quote) == 1:
                return line.rstrip("\n") + quote + "\n"
        return line

    def closing(self, node: tree_sitter.Node, body: tree_sitter.Node | None, after: int) -> str:
        if not self.rules.braces or body is None:
            return ""
        last = _last_row(node)
        if last <= after or last >= len(self.lines):
            return ""
        line = self.lines[last]
        return line if line.strip() in ("}", "};", "},", "});", "})") else ""

    def unwrap(self, node: tree_sitter.Node) -> tree_sitter.Node | None:
        """The definition a wrapper (export, decorators, template) holds, if any."""
        if node.type == "expression_statement":  # TS: `namespace X {}` is a statement
            inner = _first_named(node)
            return inner if inner is not None and inner.type in self.rules.defs else None
        inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
        if inner is not None:
            return inner
        for child in reversed(node.named_children):
            if child.type in self.rules.defs or child.type in self.rules.wrappers:
                return child
        return None

    def items(self, nodes: Sequence[tree_sitter.Node], depth: int) -> list[Definition]:
        """Top-level definitions (or those of a namespace) among `nodes`."""
        out: list[Definition] = []
        prefix_start: int | None = None
        for node in nodes:
            t = node.type
            if t in self.rules.prefix_siblings:
                if prefix_start is None:
                    prefix_start = node.start_point[0]
                continue
            start = prefix_start
            prefix_start = None
            if t in self.rules.transparent:
                out.extend(self.items(node.named_children, depth))
                continue
            definition = self.definition(node, depth, start, top=True)
            if definition is not None:
                out.append(definition)
        return out

    def definition(
        self, node: tree_sitter.Node, depth: int, start: int | None, top: bool
    ) -> Definition | None:
        rules = self.rules
        outer = node
        while node.type in rules.wrappers:
            inner = self.unwrap(node)
            if inner is None:
                return None
            node = inner
        t = node.type
        kinds = rules.defs if top else {**rules.defs, **rules.member_defs}
        kind = (rules.member_defs.get(t) if not top else None) or kinds.get(t)
        if kind is None or (kind == "const" and not top):
            return None  # a member constant is listed as a field
        first = outer.start_point[0] if start is None else start
        last = _last_row(outer)
        if kind == "const" and not self._is_constant(node):
            return None
        if kind == "const" and t == "declaration" and self._declares_function(node):
            kind = "function"
        if kind == "const" and t in _JS_DEFS and self._function_value(node) is not None:
            kind = "function"
        body = self.body(node)
        members: tuple[Definition, ...] = ()
        if body is not None and depth < _DEPTH:
            if t in rules.scopes and body.type != "declaration":
                members = tuple(self.items(body.named_children, depth + 1))
            elif t in rules.containers:
                members = tuple(self.members(body, depth + 1))
        header_end = self.header_end(node, body)
        # Members on the header's own lines (`struct S { int a; };`) are in the signature.
        members = tuple(m for m in members if m.start > header_end)
        closing = self.closing(node, body, header_end) if members else ""
        signature = self.signature(first, node, body)
        return Definition(_name_of(self.src, node), kind, first, last, signature, members, closing)

    def _is_constant(self, node: tree_sitter.Node) -> bool:
        t = node.type
        if self.grammar == "python":
            target = node if t == "assignment" else _first_named(node)
            if target is None or target.type != "assignment":
                return False
            left = target.child_by_field_name("left")
            return left is not None and left.type == "identifier"
        if t in ("lexical_declaration", "variable_declaration"):
            for decl in node.named_children:
                if decl.type != "variable_declarator":
                    continue
                value = decl.child_by_field_name("value")
                if value is not None and value.type == "call_expression":
                    fn = value.child_by_field_name("function")
                    if fn is not None and _text(self.src, fn) == "require":
                        return False  # an import, not a definition
                name = decl.child_by_field_name("name")
                return name is not None and name.type == "identifier"
            return False
        return True

    def _declares_function(self, node: tree_sitter.Node) -> bool:
        decl = node.child_by_field_name("declarator")
        while decl is not None:
            if decl.type == "function_declarator":
                return True
            decl = decl.child_by_field_name("declarator")
        return False

    def members(self, body: tree_sitter.Node, depth: int) -> list[Definition]:
        out: list[Definition] = []
        rules = self.rules
        prefix_start: int | None = None
        for index, child in enumerate(body.named_children):
            if len(out) >= _MEMBERS:
                break
            t = child.type
            if t in _COMMENTS:
                continue
            if t in rules.prefix_siblings:
                if prefix_start is None:
                    prefix_start = child.start_point[0]
                continue
            start = prefix_start
            prefix_start = None
            if index == 0 and rules.colon_body and _is_docstring(child):
                continue  # the class docstring (its first line is in the signature)
            definition = self.definition(child, depth, start, top=False)
            if definition is None:
                definition = self.field(child, start)
            if definition is not None:
                out.append(definition)
        return out

    def field(self, node: tree_sitter.Node, start: int | None) -> Definition | None:
        """A member that is not a method: kept as its first line or two."""
        first = node.start_point[0] if start is None else start
        last = _last_row(node)
        if not node.is_named or node.type in ("{", "}", "pass_statement"):
            return None
        end = last if last - first < 2 else first
        return Definition(
            _name_of(self.src, node), "field", first, last, self.lines_text(first, end)
        )


def definitions(
    tree: tree_sitter.Tree, grammar: str, lines: Sequence[str], src: bytes
) -> list[Definition]:
    """The top-level definitions of a parsed file, with their members."""
    if grammar not in RULES:
        return []
    return _Extractor(grammar, lines, src).items(tree.root_node.named_children, 0)


def render_outline(defs: Sequence[Definition], max_chars: int | None = None,
                   near: Collection[str] = ()) -> str:
    """Signatures in order, bodies left out; members indented under their container.

    A long outline is cut to fit `max_chars`: first members' fields go, then members,
    then trailing definitions; the text is always whole lines.
    """
    return fit_outline(outline_levels(defs), max_chars, near)


def outline_levels(defs: Sequence[Definition]) -> tuple[str, str, str]:
    """The outline in full, without fields, and with top-level definitions only."""
    full, no_fields, top = ("".join(_render(defs, level)) for level in (3, 2, 1))
    return full, no_fields, top


def fit_outline(levels: Sequence[str], max_chars: int | None = None,
                near: Collection[str] = ()) -> str:
    """The fullest of the `outline_levels` that fits max_chars, else the last one cut
    to whole lines that fit: first the lines whose names share words (tokens.words) with
    `near` (the code at the cursor), most shared first, then the others from the top; in
    their order in the file."""
    for text in levels:
        if max_chars is None or len(text) <= max_chars:
            return text
    lines = levels[-1].splitlines(keepends=True)
    shared = [0] * len(lines)
    if near:
        line_words = [tokens.words(line.split("=", 1)[0]) for line in lines]
        # A word on most lines (METH_, Final) tells none of them apart.
        common = Counter(w for ws in line_words for w in ws)
        rare = {w for w in near if 0 < common[w] <= max(1, len(lines) // 4)}
        shared = [len(ws & rare) for ws in line_words]
    kept: set[int] = set()
    used = 0
    for i in sorted(range(len(lines)), key=lambda i: (-shared[i], i)):
        if used + len(lines[i]) > max_chars:
            if shared[i]:
                continue  # a shorter one further down may still fit
            break
        kept.add(i)
        used += len(lines[i])
    return "".join(lines[i] for i in sorted(kept))


def _render(defs: Sequence[Definition], level: int) -> Iterator[str]:
    # level 3: everything; 2: no fields; 1: top-level definitions only (and the items of
    # namespaces and modules).
    for d in defs:
        if level < 3 and d.kind == "field":
            continue
        yield d.signature
        if d.members and (level >= 2 or d.kind in ("namespace", "module")):
            inner = list(_render(d.members, level))
            yield from inner
            if inner and d.closing:
                yield d.closing


# --- imports ---------------------------------------------------------------------------

_IMPORT_QUERIES = {
    "python": "(import_statement) @imp (import_from_statement) @imp",
    "javascript": (
        "(import_statement) @imp (export_statement source: (_)) @imp "
        "(call_expression function: [(identifier) (import)] arguments: "
        "(arguments . (string) @src)) @call"
    ),
    "c": "(preproc_include path: (string_literal) @path) @inc",
    "rust": "(use_declaration) @use (mod_item) @mod",
    "go": "(import_spec) @spec",
    "java": "(import_declaration) @imp",
}
_IMPORT_QUERIES["typescript"] = _IMPORT_QUERIES["tsx"] = _IMPORT_QUERIES["javascript"]
_IMPORT_QUERIES["cpp"] = _IMPORT_QUERIES["c"]


@cache
def _import_query(grammar: str) -> tree_sitter.Query | None:
    source = _IMPORT_QUERIES.get(grammar)
    return tree_sitter.Query(language(grammar), source) if source else None


def _string_value(src: bytes, node: tree_sitter.Node) -> str:
    """The content of a string literal node, without its quotes."""
    for child in node.named_children:
        if child.type in (
            "string_fragment",
            "string_content",
            "interpreted_string_literal_content",
        ):
            return _text(src, child)
    raw = _text(src, node)
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"`" else raw


def imports(tree: tree_sitter.Tree, grammar: str, src: bytes) -> list[Import]:
    """The imports of a parsed file, in file order."""
    query = _import_query(grammar)
    if query is None:
        return []
    captures = tree_sitter.QueryCursor(query).captures(tree.root_node)
    nodes: list[tree_sitter.Node] = []
    for name in ("imp", "inc", "use", "mod", "spec", "call"):
        nodes.extend(captures.get(name, ()))
    nodes.sort(key=lambda n: n.start_byte)
    reader = _IMPORT_READERS[grammar]
    out: list[Import] = []
    for node in nodes:
        out.extend(reader(src, node))
    return out


def _python_imports(src: bytes, node: tree_sitter.Node) -> Iterator[Import]:
    line = node.start_point[0]
    if node.type == "import_statement":
        for name in node.children_by_field_name("name"):
            if name.type == "aliased_import":
                module = _text(src, name.child_by_field_name("name"))
                yield Import((module,), (_text(src, name.child_by_field_name("alias")),), line,
                             "module")
            else:
                module = _text(src, name)  # `import a.b` binds `a`, not a.b
                yield Import((module,), (module.split(".")[0],), line,
                             "names" if "." in module else "module")
        return
    module_node = node.child_by_field_name("module_name")
    module = "".join(_text(src, module_node).split())
    names = node.children_by_field_name("name")
    if not names:  # from x import *
        yield Import((module,), (), line)
        return
    for name in names:
        alias = None
        if name.type == "aliased_import":
            alias = _text(src, name.child_by_field_name("alias"))
            name = name.child_by_field_name("name")
        imported = _text(src, name)
        sub = module + imported if module.endswith(".") else f"{module}.{imported}"
        yield Import((sub, module), (alias or imported.split(".")[-1],), line, "either")


def _js_imports(src: bytes, node: tree_sitter.Node) -> Iterator[Import]:
    line = node.start_point[0]
    if node.type == "call_expression":
        fn = node.child_by_field_name("function")
        if fn is None or (fn.type == "identifier" and _text(src, fn) != "require"):
            return
        args = node.child_by_field_name("arguments")
        source = _first_named(args) if args is not None else None
        if source is None or source.type != "string":
            return
        names: list[str] = []
        binds = "names"
        parent = node.parent
        whole = parent is not None and parent.type == "variable_declarator"
        while parent is not None and parent.type in ("await_expression", "member_expression"):
            parent = parent.parent
        if parent is not None and parent.type == "variable_declarator":
            target = parent.child_by_field_name("name")
            if target is not None and target.type == "identifier":
                names.append(_text(src, target))
                binds = "module" if whole else "names"  # not `require('./x').y`
            elif target is not None:
                names.extend(_pattern_names(src, target))
        yield Import((_string_value(src, source),), tuple(names), line, binds)
        return
    source = node.child_by_field_name("source")
    if source is None:
        return
    names = []
    namespace = False
    for child in node.named_children:
        if child.type == "import_clause":
            for part in child.named_children:
                if part.type == "identifier":
                    names.append(_text(src, part))
                elif part.type == "namespace_import":
                    namespace = True
                    names.extend(
                        _text(src, c) for c in part.named_children if c.type == "identifier"
                    )
                elif part.type == "named_imports":
                    for spec in part.named_children:
                        if spec.type == "import_specifier":
                            alias = spec.child_by_field_name("alias")
                            names.append(_text(src, alias or spec.child_by_field_name("name")))
    binds = "module" if namespace and len(names) == 1 else "names"
    yield Import((_string_value(src, source),), tuple(names), line, binds)


def _pattern_names(src: bytes, pattern: tree_sitter.Node) -> list[str]:
    """Names a destructuring pattern binds: `{ a, b: c }` binds a and c."""
    out = []
    for child in pattern.named_children:
        if child.type in ("shorthand_property_identifier_pattern", "identifier"):
            out.append(_text(src, child))
        elif child.type == "pair_pattern":
            value = child.child_by_field_name("value")
            if value is not None and value.type == "identifier":
                out.append(_text(src, value))
    return out


def _c_imports(src: bytes, node: tree_sitter.Node) -> Iterator[Import]:
    path = node.child_by_field_name("path")
    if path is not None and path.type == "string_literal":
        yield Import((_string_value(src, path),), (), node.start_point[0])


def _rust_imports(src: bytes, node: tree_sitter.Node) -> Iterator[Import]:
    line = node.start_point[0]
    if node.type == "mod_item":
        if node.child_by_field_name("body") is None:  # `mod x;` is a file
            name = _text(src, node.child_by_field_name("name"))
            yield Import((f"self::{name}",), (name,), line)
        return
    argument = node.child_by_field_name("argument")
    if argument is not None:
        for path, bound in _rust_use_paths(src, argument, ""):
            yield Import((path,), (bound,) if bound else (), line)


def _rust_use_paths(src: bytes, node: tree_sitter.Node, prefix: str) -> Iterator[tuple[str, str]]:
    def join(a: str, b: str) -> str:
        return f"{a}::{b}" if a and b else a or b

    t = node.type
    if t == "use_as_clause":
        path = join(prefix, "".join(_text(src, node.child_by_field_name("path")).split()))
        yield path, _text(src, node.child_by_field_name("alias"))
    elif t == "scoped_use_list":
        base = join(prefix, "".join(_text(src, node.child_by_field_name("path")).split()))
        items = node.child_by_field_name("list")
        if items is not None:
            yield from _rust_use_paths(src, items, base)
    elif t == "use_list":
        for child in node.named_children:
            yield from _rust_use_paths(src, child, prefix)
    elif t == "use_wildcard":
        path = _text(src, node).removesuffix("*").rstrip(":")
        yield join(prefix, "".join(path.split())), ""
    elif t == "self":
        yield prefix, prefix.rsplit("::", 1)[-1]
    elif t in ("scoped_identifier", "identifier", "crate", "super"):
        path = join(prefix, "".join(_text(src, node).split()))
        yield path, path.rsplit("::", 1)[-1]


def _go_imports(src: bytes, node: tree_sitter.Node) -> Iterator[Import]:
    path_node = node.child_by_field_name("path")
    if path_node is None:
        return
    path = _string_value(src, path_node)
    alias = node.child_by_field_name("name")
    bound = _text(src, alias) if alias is not None else path.rsplit("/", 1)[-1]
    names = (bound,) if bound not in ("_", ".") else ()
    yield Import((path,), names, node.start_point[0])


def _java_imports(src: bytes, node: tree_sitter.Node) -> Iterator[Import]:
    is_static = any(c.type == "static" for c in node.children)
    wildcard = any(c.type == "asterisk" for c in node.children)
    target = next(
        (c for c in node.named_children if c.type in ("scoped_identifier", "identifier")), None
    )
    if target is None:
        return
    path = "".join(_text(src, target).split())
    line = node.start_point[0]
    if wildcard:
        yield Import((f"{path}.*",), (), line)
    elif is_static:
        owner, _, member = path.rpartition(".")
        yield Import((owner,), (member,), line)
    else:
        yield Import((path,), (path.rsplit(".", 1)[-1],), line)


_IMPORT_READERS = {
    "python": _python_imports,
    "javascript": _js_imports,
    "typescript": _js_imports,
    "tsx": _js_imports,
    "c": _c_imports,
    "cpp": _c_imports,
    "rust": _rust_imports,
    "go": _go_imports,
    "java": _java_imports,
}


# --- chunks ----------------------------------------------------------------------------


def chunk_ranges(
    defs: Sequence[Definition],
    line_count: int,
    lines: Sequence[str] | None = None,
    max_lines: int = CHUNK_LINES,
) -> list[tuple[int, int]]:
    """Line ranges for retrieval: one per top-level definition (long ones split, at their
    members when they have some), the lines between definitions grouped; blank-only
    ranges left out. Comment lines right above a definition go with it."""
    out: list[tuple[int, int]] = []
    _cut(defs, 0, line_count - 1, lines, max_lines, out)
    if lines is not None:
        out = [(a, b) for a, b in out if any(lines[i].strip() for i in range(a, b + 1))]
    return out


def _cut(
    defs: Sequence[Definition],
    lo: int,
    hi: int,
    lines: Sequence[str] | None,
    max_lines: int,
    out: list[tuple[int, int]],
) -> None:
    # Small definitions and the lines between definitions are grouped up to max_lines;
    # larger definitions stand alone.
    group: list[int] = []

    def flush() -> None:
        if group:
            out.append((group[0], group[1]))
            group.clear()

    def add_small(first: int, last: int) -> None:
        for a, b in _pieces(first, last, max_lines):
            if group and b - group[0] + 1 <= max_lines:
                group[1] = b
            else:
                flush()
                group.extend((a, b))

    pos = lo
    for d in sorted(defs, key=lambda d: d.start):
        start, end = max(d.start, pos), min(d.end, hi)
        if end < start:
            continue
        if lines is not None:
            while start > pos and _is_comment(lines[start - 1]):
                start -= 1
        if start > pos:
            add_small(pos, start - 1)
        size = end - start + 1
        if size < _STANDALONE:
            add_small(start, end)
        elif size <= max(max_lines, _LONG):
            # A header or a few lines just above join the definition when they fit.
            if group and group[1] == start - 1 and end - group[0] + 1 <= max_lines:
                start = group[0]
                group.clear()
            flush()
            out.append((start, end))
        else:
            flush()
            if d.members:
                _cut(d.members, start, end, lines, max_lines, out)
            else:
                out.extend(_pieces(start, end, max_lines))
        pos = end + 1
    if pos <= hi:
        add_small(pos, hi)
    flush()


def _pieces(first: int, last: int, max_lines: int) -> list[tuple[int, int]]:
    """Even pieces of at most max_lines lines."""
    total = last - first + 1
    count = -(-total // max_lines)
    size = -(-total // count)
    return [(start, min(start + size - 1, last)) for start in range(first, last + 1, size)]


def _is_comment(line: str) -> bool:
    s = line.lstrip()
    return s.startswith(("#", "//", "/*", "*", "///", "--")) and not s.startswith(
        ("#include", "#define", "#if", "#[")
    )


def _generic_items(tree: tree_sitter.Tree) -> list[Definition]:
    """For grammars without definitions: the top-level nodes, so chunks still end at
    rule or element boundaries when they can."""
    out = []
    for node in tree.root_node.named_children:
        children = node.named_children if node.type in ("object", "array", "element") else ()
        members = tuple(
            Definition("", "item", c.start_point[0], _last_row(c), "") for c in children
        )
        out.append(Definition("", "item", node.start_point[0], _last_row(node), "", members))
    return out


def file_chunks(
    tree: tree_sitter.Tree,
    grammar: str,
    lines: Sequence[str],
    src: bytes,
    defs: Sequence[Definition] | None = None,
) -> list[tuple[int, int]]:
    """The retrieval chunks of a parsed file (`defs`: its definitions, when known)."""
    if grammar in RULES:
        items = definitions(tree, grammar, lines, src) if defs is None else defs
    else:
        items = _generic_items(tree)
    return chunk_ranges(items, len(lines), lines)


def index_chunks(
    source: bytes, grammar: str, lines: Sequence[str]
) -> tuple[list[tuple[int, int]], list[Definition] | None]:
    """The retrieval chunks of a file, parsed a piece at a time (see `pieces`), and its
    definitions when it was parsed whole (one piece): then they are exact."""
    items: list[Definition] = []
    cut = pieces(source, PIECE_BYTES)
    for piece in cut:
        tree = parse(source, grammar, byte_range=piece)
        if grammar in RULES:
            items.extend(definitions(tree, grammar, lines, source))
        else:
            items.extend(_generic_items(tree))
        del tree
        maybe_yield()
    whole = len(cut) == 1 and grammar in RULES
    return chunk_ranges(items, len(lines), lines), items if whole else None


# --- all at once -----------------------------------------------------------------------


def analyze(
    text: str, grammar: str, source: bytes | None = None, piece_bytes: int | None = None
) -> FileSyntax:
    """Parse a file's text and gather its definitions, imports and chunks; with
    `piece_bytes`, a large file is parsed in pieces (a definition cut by a piece's end
    is then missed, the rest is found)."""
    if source is None:
        source = text.encode("utf-8", "surrogatepass")
    lines = split_lines(text)
    if piece_bytes is None or len(source) <= piece_bytes:
        tree = parse(source, grammar)
        return analyze_tree(tree, grammar, lines, source)
    defs: list[Definition] = []
    found: list[Import] = []
    errors = False
    for piece in pieces(source, piece_bytes):
        tree = parse(source, grammar, byte_range=piece)
        if grammar in RULES:
            defs.extend(definitions(tree, grammar, lines, source))
        found.extend(imports(tree, grammar, source))
        errors = errors or tree.root_node.has_error
        del tree
        maybe_yield()
    chunks = chunk_ranges(defs, len(lines), lines)
    return FileSyntax(grammar, len(lines), tuple(defs), tuple(found), tuple(chunks), errors)


def outline_of(text: str, grammar: str, piece_bytes: int) -> tuple[str, str, str]:
    """A file's `outline_levels` (only its definitions are looked for), large files
    parsed in pieces of piece_bytes."""
    source = text.encode("utf-8", "surrogatepass")
    lines = split_lines(text)
    defs: list[Definition] = []
    for piece in pieces(source, piece_bytes):
        tree = parse(source, grammar, byte_range=piece)
        defs.extend(definitions(tree, grammar, lines, source))
        del tree
        maybe_yield()
    return outline_levels(defs)


def analyze_tree(
    tree: tree_sitter.Tree, grammar: str, lines: Sequence[str], src: bytes
) -> FileSyntax:
    defs = definitions(tree, grammar, lines, src)
    chunks = file_chunks(tree, grammar, lines, src, defs)
    return FileSyntax(
        grammar,
        len(lines),
        tuple(defs),
        tuple(imports(tree, grammar, src)),
        tuple(chunks),
        tree.root_node.has_error,
    )
