"""The names a module offers as `module.NAME`, when they can be known from its text.

After `hdrs.` the user means one of the names `hdrs` defines: a suggestion naming anything
else is wrong code. The engine steers decoding onto these names (engine/names.py), so only
a module whose names are all seen may give them: a Python module with a star import or a
module-level `__getattr__`, a package's `__init__.py` (its submodules are attributes too),
a CommonJS module that exports something other than an object literal: all these are
"open" (None), and nothing is steered.
"""

from __future__ import annotations

import os

import tree_sitter

from helios_lsp.engine.context import syntax
from helios_lsp.engine.context.syntax import _text

MAX_NAMES = 2000  # a generated giant offers more than any prompt could use

_PY_BLOCKS = ("if_statement", "elif_clause", "else_clause", "try_statement", "except_clause",
              "finally_clause", "with_statement", "for_statement", "while_statement",
              "block", "except_group_clause")
_PY_TARGETS = ("pattern_list", "tuple_pattern", "list_pattern", "list_splat_pattern",
               "expression_list", "tuple", "list")


class _Open(Exception):
    """The module's names cannot all be known from its text."""


def module_names(text: str, grammar: str, path: str = "") -> frozenset[str] | None:
    """Every name `module.NAME` may use for the module in `text`, or None when they cannot
    all be known (an "open" module, an unsupported language, too many names)."""
    reader = _READERS.get(grammar)
    if reader is None or os.path.basename(path) == "__init__.py":
        return None
    source = text.encode("utf-8", "surrogatepass")
    tree = syntax.parse(source, grammar)
    if tree.root_node.has_error:
        return None  # a half-written file may hide definitions
    names: set[str] = set()
    try:
        reader(source, tree.root_node, names)
    except _Open:
        return None
    if not names or len(names) > MAX_NAMES:
        return None
    return frozenset(names)


# --- Python ----------------------------------------------------------------------------


def _python(src: bytes, node: tree_sitter.Node, out: set[str]) -> None:
    """Names bound at module level: definitions, assignments, imports, loop targets, in
    the module's own statements and the blocks of its `if`/`try`/`with`/`for`."""
    for child in node.named_children:
        t = child.type
        if t == "decorated_definition":
            child = child.child_by_field_name("definition") or child
            t = child.type
        if t in ("function_definition", "class_definition"):
            name = _text(src, child.child_by_field_name("name"))
            if name == "__getattr__":
                raise _Open  # any name may be answered
            out.add(name)
        elif t in ("assignment", "augmented_assignment"):
            _python_assignment(src, child, out)
        elif t == "expression_statement":  # older grammars wrap assignments in one
            for part in child.named_children:
                _python_assignment(src, part, out)
        elif t == "import_statement":
            for name in child.children_by_field_name("name"):
                if name.type == "aliased_import":
                    out.add(_text(src, name.child_by_field_name("alias")))
                else:
                    out.add(_text(src, name).split(".")[0])
        elif t in ("import_from_statement", "future_import_statement"):
            if any(c.type == "wildcard_import" for c in child.named_children):
                raise _Open
            for name in child.children_by_field_name("name"):
                if name.type == "aliased_import":
                    out.add(_text(src, name.child_by_field_name("alias")))
                else:
                    out.add(_text(src, name).split(".")[-1])
        elif t == "type_alias_statement":  # type Vector[T] = list[T]
            out.add(_text(src, child.child_by_field_name("left")).split("[")[0].strip())
        elif t in _PY_BLOCKS:
            if t == "for_statement":
                _python_target(src, child.child_by_field_name("left"), out)
            _python(src, child, out)


def _python_assignment(src: bytes, node: tree_sitter.Node, out: set[str]) -> None:
    if node.type == "assignment":
        _python_target(src, node.child_by_field_name("left"), out)
        right = node.child_by_field_name("right")
        if right is not None and right.type == "assignment":  # a = b = 1
            _python_assignment(src, right, out)
    elif node.type == "augmented_assignment":
        _python_target(src, node.child_by_field_name("left"), out)


def _python_target(src: bytes, node: tree_sitter.Node | None, out: set[str]) -> None:
    if node is None:
        return
    if node.type == "identifier":
        out.add(_text(src, node))
    elif node.type in _PY_TARGETS:
        for child in node.named_children:
            _python_target(src, child, out)


# --- JavaScript and TypeScript ---------------------------------------------------------

_JS_DECLARATIONS = ("function_declaration", "generator_function_declaration",
                    "class_declaration", "abstract_class_declaration", "interface_declaration",
                    "type_alias_declaration", "enum_declaration", "module",
                    "internal_module", "function_signature")


def _javascript(src: bytes, node: tree_sitter.Node, out: set[str]) -> None:
    """What the module exports: `export` declarations and lists, `exports.X = …`,
    `module.exports.X = …`, `module.exports = {…}` (an object literal's keys)."""
    for child in node.named_children:
        if child.type == "export_statement":
            _js_export(src, child, out)
        elif child.type == "expression_statement":
            expr = syntax._first_named(child)
            if expr is not None and expr.type == "assignment_expression":
                _js_assignment(src, expr, out)


def _js_export(src: bytes, node: tree_sitter.Node, out: set[str]) -> None:
    if node.child_by_field_name("source") is not None and not any(
            c.type == "export_clause" for c in node.named_children):
        raise _Open  # export * from '…'
    if any(not c.is_named and c.type == "default" for c in node.children):
        out.add("default")
        return
    declaration = node.child_by_field_name("declaration")
    if declaration is not None:
        if declaration.type in _JS_DECLARATIONS:
            out.add(_text(src, declaration.child_by_field_name("name")))
        elif declaration.type in ("lexical_declaration", "variable_declaration"):
            for decl in declaration.named_children:
                if decl.type == "variable_declarator":
                    name = decl.child_by_field_name("name")
                    if name is not None and name.type == "identifier":
                        out.add(_text(src, name))
                    elif name is not None:
                        raise _Open  # export const {a, ...rest} = …
        return
    for clause in node.named_children:
        if clause.type == "export_clause":
            for spec in clause.named_children:
                if spec.type == "export_specifier":
                    alias = spec.child_by_field_name("alias")
                    out.add(_text(src, alias or spec.child_by_field_name("name")))


def _js_assignment(src: bytes, node: tree_sitter.Node, out: set[str]) -> None:
    left = _text(src, node.child_by_field_name("left")).replace(" ", "")
    right = node.child_by_field_name("right")
    if left == "module.exports":
        if right is None or right.type != "object":
            raise _Open  # a class or a function: its statics are not looked for
        for prop in right.named_children:
            if prop.type == "shorthand_property_identifier":
                out.add(_text(src, prop))
            elif prop.type in ("pair", "method_definition"):
                key = prop.child_by_field_name("key" if prop.type == "pair" else "name")
                if key is None or key.type not in ("property_identifier", "string"):
                    raise _Open  # a computed key
                out.add(_text(src, key).strip("'\""))
            elif prop.type == "comment":
                continue
            else:
                raise _Open  # ...spread
    elif left.startswith(("module.exports.", "exports.")):
        name = left.rsplit(".", 1)[1]
        if name.isidentifier():
            out.add(name)
        if right is not None and right.type == "assignment_expression":  # a = b = …
            _js_assignment(src, right, out)


_READERS = {
    "python": _python,
    "javascript": _javascript,
    "typescript": _javascript,
    "tsx": _javascript,
}
