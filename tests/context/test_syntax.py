"""Definitions, outlines, imports and chunks from real tree-sitter parses, per language.

HTML, CSS and JSON have no definitions and no imports in this library: they are only
chunked (at their top-level rules, elements or members).
"""

from __future__ import annotations

import textwrap
from itertools import pairwise

import pytest

from helios_lsp.engine.context import syntax
from helios_lsp.engine.context.doc_syntax import ParsedDocuments, text_edit


def _analyze(source: str, grammar: str) -> syntax.FileSyntax:
    return syntax.analyze(textwrap.dedent(source).lstrip("\n"), grammar)


def _names(parsed: syntax.FileSyntax) -> list[tuple[str, str]]:
    return [(d.kind, d.name) for d in parsed.definitions]


def _imports(parsed: syntax.FileSyntax) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [(i.modules, i.names) for i in parsed.imports]


def test_python():
    parsed = _analyze(
        '''
        """Module doc."""
        import os, a.b as ab
        from . import tasks
        from .x import y, z as zz
        from ..pkg.mod import (c,
                               d)
        from a.b import c2
        MAX = 3

        @decor
        def f(a, b=1,
              *c) -> int:
            """Doc line.

            More."""
            return a

        class A(Base, metaclass=M):
            """Class doc."""
            x: int = 1
            def m(self): pass
            @property
            async def n(self) -> int:
                return 1

        if __name__ == "__main__":
            main()
        ''',
        "python",
    )
    assert _names(parsed) == [("const", "MAX"), ("function", "f"), ("class", "A")]
    cls = parsed.definitions[2]
    assert [(m.kind, m.name) for m in cls.members] == [
        ("field", "x"),
        ("method", "m"),
        ("method", "n"),
    ]
    assert parsed.outline() == textwrap.dedent(
        '''\
        MAX = 3
        @decor
        def f(a, b=1,
              *c) -> int:
            """Doc line."""
        class A(Base, metaclass=M):
            """Class doc."""
            x: int = 1
            def m(self): pass
            @property
            async def n(self) -> int:
        '''
    )
    assert _imports(parsed) == [
        (("os",), ("os",)),
        (("a.b",), ("ab",)),
        ((".tasks", "."), ("tasks",)),
        ((".x.y", ".x"), ("y",)),
        ((".x.z", ".x"), ("zz",)),
        (("..pkg.mod.c", "..pkg.mod"), ("c",)),
        (("..pkg.mod.d", "..pkg.mod"), ("d",)),
        (("a.b.c2", "a.b"), ("c2",)),
    ]
    # What the names are bound to: the module (`import os`, `import a.b as ab`), a submodule
    # or a member as the files decide (`from . import tasks`).
    assert [i.binds for i in parsed.imports] == ["module", "module", *["either"] * 6]
    f = parsed.definitions[1]
    assert (f.start, f.end) == (9, 15)  # the decorator line starts it


@pytest.mark.parametrize("grammar", ["javascript", "typescript", "tsx"])
def test_javascript_and_typescript(grammar):
    typed = grammar != "javascript"
    source = """
        import {a, b as bb} from './b';
        import x from "../y";
        import * as ns from './ns';
        const fs = require('fs'), z = require('./z');
        const { p, q: qq } = require('./pq');
        export const LIMIT = 10;
        export function f(a) {
          return a;
        }
        export default class A extends B {
          constructor(a) { super(); }
          async m(s) {
            return s;
          }
        }
        const g = (a) => {
          return a;
        };
        """
    source = textwrap.dedent(source)
    if typed:
        source += "interface I { m(s: string): void; y: number }\ntype U = string | number;\n"
    parsed = _analyze(source, grammar)
    names = _names(parsed)
    assert names[:4] == [("const", "LIMIT"), ("function", "f"), ("class", "A"), ("function", "g")]
    if typed:
        assert names[4:] == [("interface", "I"), ("type", "U")]
    outline = parsed.outline()
    assert outline.startswith(
        "export const LIMIT = 10;\n"
        "export function f(a) {\n"
        "export default class A extends B {\n"
        "  constructor(a) { super(); }\n"
        "  async m(s) {\n"
        "}\n"
        "const g = (a) => {\n"
    )
    assert "return" not in outline
    assert _imports(parsed) == [
        (("./b",), ("a", "bb")),
        (("../y",), ("x",)),
        (("./ns",), ("ns",)),
        (("fs",), ("fs",)),
        (("./z",), ("z",)),
        (("./pq",), ("p", "qq")),
    ]
    # Bound to the module itself: `import * as ns` and `z = require('./z')`; the others
    # bind what a module exports.
    assert [i.binds for i in parsed.imports] == [
        "names", "names", "module", "module", "module", "names"]


@pytest.mark.parametrize("grammar", ["c", "cpp"])
def test_c_and_cpp(grammar):
    source = """
        #include "x.h"
        #include <stdio.h>
        #define MAX 10
        struct S {
            int a;
            char *b;
        };
        typedef struct S S_t;
        static int
        g(int a,
          int b)
        {
            return a;
        }
        int proto(int x);
        """
    if grammar == "cpp":
        source += """
        namespace ns {
        class A : public B {
         public:
          A(int a);
          virtual int m(const std::string& s) const;
          int n() { return 1; }
        };
        template <typename T>
        T add(T a, T b) {
          return a + b;
        }
        }
        """
    parsed = _analyze(source, grammar)
    names = _names(parsed)
    assert names[:5] == [
        ("macro", "MAX"),
        ("struct", "S"),
        ("type", "S_t"),
        ("function", "g"),
        ("function", "proto"),
    ]
    outline = parsed.outline()
    assert outline.startswith(
        "#define MAX 10\n"
        "struct S {\n"
        "    int a;\n"
        "    char *b;\n"
        "};\n"
        "typedef struct S S_t;\n"
        "static int\n"
        "g(int a,\n"
        "  int b)\n"
        "{\n"
        "int proto(int x);\n"
    )
    assert "return a;" not in outline
    if grammar == "cpp":
        namespace = parsed.definitions[5]
        assert (namespace.kind, namespace.name) == ("namespace", "ns")
        assert [(m.kind, m.name) for m in namespace.members] == [
            ("class", "A"),
            ("function", "add"),
        ]
        assert outline.endswith(
            "namespace ns {\n"
            "class A : public B {\n"
            " public:\n"
            "  A(int a);\n"
            "  virtual int m(const std::string& s) const;\n"
            "  int n() { return 1; }\n"
            "};\n"
            "template <typename T>\n"
            "T add(T a, T b) {\n"
            "}\n"
        )
    assert _imports(parsed) == [(("x.h",), ())]  # <stdio.h> is the system's


def test_go():
    parsed = _analyze(
        """
        package main

        import "fmt"
        import (
            "example.com/mod/pkg/util"
            str "strings"
            _ "embed"
        )

        const Max = 3

        type T struct {
            A int
            b string
        }

        func (r *T) M() error {
            return nil
        }

        func F(a int,
            b int) int {
            return a
        }
        """,
        "go",
    )
    assert _names(parsed) == [
        ("const", "Max"),
        ("type", "T"),
        ("method", "M"),
        ("function", "F"),
    ]
    assert parsed.outline() == textwrap.dedent(
        """\
        const Max = 3
        type T struct {
            A int
            b string
        }
        func (r *T) M() error {
        func F(a int,
            b int) int {
        """
    )
    assert _imports(parsed) == [
        (("fmt",), ("fmt",)),
        (("example.com/mod/pkg/util",), ("util",)),
        (("strings",), ("str",)),
        (("embed",), ()),
    ]


def test_rust():
    parsed = _analyze(
        """
        use crate::a::b;
        use super::c::{d, e as ee};
        use self::f::*;
        mod x;
        pub mod y { pub fn z() {} }
        pub const MAX: u8 = 3;
        #[derive(Debug)]
        pub struct S {
            pub a: u8,
            b: String,
        }
        impl S {
            pub fn f(&self) -> u8 {
                self.a
            }
        }
        pub fn g<T: Clone>(a: T) -> T {
            a
        }
        """,
        "rust",
    )
    assert _names(parsed) == [
        ("module", "x"),
        ("module", "y"),
        ("const", "MAX"),
        ("struct", "S"),
        ("impl", "S"),
        ("function", "g"),
    ]
    assert parsed.outline() == textwrap.dedent(
        """\
        mod x;
        pub mod y { pub fn z() {} }
        pub const MAX: u8 = 3;
        #[derive(Debug)]
        pub struct S {
            pub a: u8,
            b: String,
        }
        impl S {
            pub fn f(&self) -> u8 {
        }
        pub fn g<T: Clone>(a: T) -> T {
        """
    )
    assert _imports(parsed) == [
        (("crate::a::b",), ("b",)),
        (("super::c::d",), ("d",)),
        (("super::c::e",), ("ee",)),
        (("self::f",), ()),
        (("self::x",), ("x",)),
    ]


def test_java():
    parsed = _analyze(
        """
        package com.x;
        import com.y.Bar;
        import static com.y.Baz.qux;
        import com.z.*;
        public class A extends B implements C {
            private int x = 1;
            public A(int a) { }
            public int m(String s) throws E {
                return 1;
            }
        }
        """,
        "java",
    )
    assert _names(parsed) == [("class", "A")]
    assert parsed.outline() == textwrap.dedent(
        """\
        public class A extends B implements C {
            private int x = 1;
            public A(int a) { }
            public int m(String s) throws E {
        }
        """
    )
    assert _imports(parsed) == [
        (("com.y.Bar",), ("Bar",)),
        (("com.y.Baz",), ("qux",)),
        (("com.z.*",), ()),
    ]


@pytest.mark.parametrize(
    ("grammar", "source"),
    [
        ("html", "<html>\n<head><title>t</title></head>\n<body>\n<p>x</p>\n</body>\n</html>\n"),
        ("css", "a { color: red; }\n\n.b {\n  margin: 0;\n}\n"),
        ("json", '{\n  "a": 1,\n  "b": [1, 2]\n}\n'),
    ],
)
def test_markup_and_data_are_only_chunked(grammar, source):
    parsed = syntax.analyze(source, grammar)
    assert parsed.definitions == () and parsed.imports == ()
    assert parsed.chunks == ((0, source.count("\n") - 1),)


def test_chunks_cut_at_definitions_and_split_long_ones():
    body = "".join(f"    x{i} = {i}\n" for i in range(130))
    source = (
        "import os\n\n"
        + "".join(f"def small{i}():\n    return {i}\n\n" for i in range(3))
        + "# about big\n"
        + "def big():\n"
        + body
        + "\n"
        + "class K:\n"
        + "".join(f"    def m{i}(self):\n" + "        pass\n" * 20 for i in range(4))
    )
    parsed = syntax.analyze(source, "python")
    lines = syntax.split_lines(source)
    chunks = parsed.chunks
    # Small definitions and the lines between them are grouped.
    assert chunks[0] == (0, 10)
    # The comment above `big` starts its chunk; 131 lines make 3 even pieces.
    big = [c for c in chunks if lines[c[0]].startswith(("# about big", "    x"))]
    assert [b - a + 1 for a, b in big] == [44, 44, 44]
    assert lines[big[0][0]] == "# about big\n"
    # The class (85 lines) is cut at its methods.
    k = next(i for i, line in enumerate(lines) if line.startswith("class K"))
    class_chunks = [c for c in chunks if c[0] >= k]
    assert len(class_chunks) == 4 and class_chunks[0][0] == k
    assert all(b - a + 1 <= syntax.CHUNK_LINES + 10 for a, b in chunks)
    covered = sorted(i for a, b in chunks for i in range(a, b + 1))
    assert covered == sorted(set(covered))  # no line in two chunks


def test_a_broken_file_still_gives_what_parses():
    parsed = syntax.analyze(
        "def ok(a):\n    return a\n\ndef broken(:\n    pass\n\nX = 1\n", "python"
    )
    assert parsed.has_error
    assert ("function", "ok") in _names(parsed)
    assert ("const", "X") in _names(parsed)


def test_outline_is_cut_to_fit_keeping_definitions():
    source = "class A:\n" + "".join(f"    def m{i}(self, a, b):\n        pass\n" for i in range(40))
    source += "".join(f"def top{i}():\n    pass\n" for i in range(5))
    parsed = syntax.analyze(source, "python")
    full = parsed.outline()
    short = parsed.outline(200)
    assert len(full) > 200 >= len(short)
    assert short.startswith("class A:\n") and short.endswith("\n")
    assert "def top4():" in short  # members went first, top-level definitions stayed


def test_pieces_cut_large_sources_at_top_level_lines():
    source = b"".join(b"def f%d():\n    return %d\n\n" % (i, i) for i in range(3000))
    pieces = syntax.pieces(source, 4096)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(source)
    assert all(b - a <= 4096 for a, b in pieces)
    assert all(a == b2 for (_, b2), (a, _) in pairwise(pieces))
    assert all(source[a : a + 4] == b"def " for a, _ in pieces)
    lines = syntax.split_lines(source.decode())
    whole = syntax.chunk_ranges(
        syntax.definitions(syntax.parse(source, "python"), "python", lines, source),
        len(lines),
        lines,
    )
    assert syntax.index_chunks(source, "python", lines) == (whole, None)  # cut: no outline


def test_incremental_reparse_matches_a_full_parse():
    docs = ParsedDocuments()
    text = "import os\n\ndef f(a):\n    return a\n"
    docs.get("k", text, "python")
    for new in (
        text.replace("return a", "return a + 1"),
        "from . import tasks\n" + text,
        text + "\ndef g(é):\n    return 'ü'\n",
        "",
    ):
        parsed = docs.get("k", new, "python")
        assert parsed.tree is not None
        assert str(parsed.tree.root_node) == str(syntax.parse(new.encode(), "python").root_node)
        text = new
    assert text_edit("abc", "abXc")["new_end_byte"] == 3


@pytest.mark.parametrize(
    ("grammar", "source"),
    [
        ("python", "class A:\n"),
        ("python", "def f():\n"),
        ("python", "import os\nclass B(A):\n    def m(self):\n"),
        ("javascript", "const x = require();\nclass A {\n"),
        ("typescript", "namespace N {\n"),
    ],
)
def test_half_typed_code_still_parses(grammar, source):
    """Bodies being typed have no children at all: nothing may raise on them."""
    parsed = syntax.analyze(source, grammar)
    assert parsed.line_count == source.count("\n")
