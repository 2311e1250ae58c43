"""Imports resolved to files, for each form the library understands, on real trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helios_lsp.engine.context import syntax
from helios_lsp.engine.context.resolve import Files, read_go_module, resolve


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _files(root: Path) -> Files:
    return Files(
        exists=os.path.isfile,
        in_dir=lambda d: (
            sorted(os.path.join(d, n) for n in os.listdir(d)) if os.path.isdir(d) else []
        ),
        go_module=read_go_module,
    )


def _resolved(root: Path, current: str, grammar: str) -> dict[str, list[str]]:
    """Each import's first bound name (or module) -> the files it names, relative."""
    path = root / current
    parsed = syntax.analyze(path.read_text(), grammar)
    out = {}
    for imp in parsed.imports:
        found = resolve(imp, grammar, str(path), str(root), _files(root))
        key = imp.names[0] if imp.names else imp.modules[0]
        out[key] = [os.path.relpath(p, root) for p in found]
    return out


def test_python(tmp_path):
    _tree(
        tmp_path,
        {
            "src/app/__init__.py": "",
            "src/app/tasks.py": "def run(): ...\n",
            "src/app/x.py": "y = 1\n",
            "src/app/sub/__init__.py": "",
            "src/app/sub/main.py": (
                "from .. import tasks\n"
                "from ..x import y\n"
                "from . import helpers\n"
                "import app.tasks as t\n"
                "from app.sub.helpers import thing\n"
                "import numpy as np\n"
            ),
            "src/app/sub/helpers.py": "thing = 1\n",
        },
    )
    assert _resolved(tmp_path, "src/app/sub/main.py", "python") == {
        "tasks": ["src/app/tasks.py"],
        "y": ["src/app/x.py"],
        "helpers": ["src/app/sub/helpers.py"],
        "t": ["src/app/tasks.py"],  # found from an ancestor (src/), not the folder root
        "thing": ["src/app/sub/helpers.py"],
        "np": [],  # not in the workspace
    }


@pytest.mark.parametrize("ext", [".js", ".ts"])
def test_javascript_and_typescript(tmp_path, ext):
    _tree(
        tmp_path,
        {
            f"lib/x{ext}": "export const x = 1;\n",
            f"lib/b{ext}": "export const a = 1;\n",
            f"y/index{ext}": "export default 1;\n",
            f"lib/compiled{ext}": "export const c = 1;\n",
            f"lib/main{ext}": (
                "const x = require('./x');\n"
                "import {a} from './b';\n"
                'import y from "../y";\n'
                "import {c} from './compiled.js';\n"
                "import React from 'react';\n"
            ),
        },
    )
    assert _resolved(
        tmp_path, f"lib/main{ext}", "typescript" if ext == ".ts" else "javascript"
    ) == {
        "x": [f"lib/x{ext}"],
        "a": [f"lib/b{ext}"],
        "y": [f"y/index{ext}"],
        "c": [f"lib/compiled{ext}"],  # "./compiled.js" is compiled.ts in TypeScript sources
        "React": [],
    }


def test_c_includes(tmp_path):
    _tree(
        tmp_path,
        {
            "src/local.h": "int local(void);\n",
            "include/proj/api.h": "int api(void);\n",
            "src/main.c": '#include "local.h"\n#include "proj/api.h"\n#include <stdio.h>\n',
        },
    )
    assert _resolved(tmp_path, "src/main.c", "c") == {
        "local.h": ["src/local.h"],
        "proj/api.h": ["include/proj/api.h"],
    }


def test_rust(tmp_path):
    _tree(
        tmp_path,
        {
            "Cargo.toml": "[package]\nname = 'x'\n",
            "src/lib.rs": "pub struct Config;\n",
            "src/a.rs": "pub mod b;\n",
            "src/a/b.rs": "pub fn f() {}\n",
            "src/net/mod.rs": "pub fn g() {}\n",
            "src/net/sub/x.rs": "pub fn h() {}\n",
            "src/net/sub/mod.rs": (
                "use crate::a::b;\n"
                "use super::g;\n"
                "use crate::Config;\n"
                "mod x;\n"
                "use std::collections::HashMap;\n"
            ),
        },
    )
    assert _resolved(tmp_path, "src/net/sub/mod.rs", "rust") == {
        "b": ["src/a/b.rs"],
        "g": ["src/net/mod.rs"],
        "Config": ["src/lib.rs"],
        "x": ["src/net/sub/x.rs"],
        "HashMap": [],
    }


def test_go(tmp_path):
    _tree(
        tmp_path,
        {
            "go.mod": "module example.com/mod\n\ngo 1.22\n",
            "pkg/util/util.go": "package util\n",
            "pkg/util/extra.go": "package util\n",
            "pkg/util/util_test.go": "package util\n",
            "cmd/main.go": (
                'package main\n\nimport (\n\t"example.com/mod/pkg/util"\n\t"fmt"\n'
                '\t"example.com/other/x"\n)\n'
            ),
        },
    )
    assert _resolved(tmp_path, "cmd/main.go", "go") == {
        # The package's directory; the file named like the package first, no tests.
        "util": ["pkg/util/util.go", "pkg/util/extra.go"],
        "fmt": [],
        "x": [],
    }


def test_java(tmp_path):
    _tree(
        tmp_path,
        {
            "src/main/java/com/y/Bar.java": "package com.y;\npublic class Bar {}\n",
            "src/main/java/com/y/Baz.java": "package com.y;\npublic class Baz {}\n",
            "src/main/java/com/x/A.java": (
                "package com.x;\n"
                "import com.y.Bar;\n"
                "import static com.y.Baz.qux;\n"
                "import com.y.Bar.Inner;\n"
                "import java.util.List;\n"
            ),
        },
    )
    assert _resolved(tmp_path, "src/main/java/com/x/A.java", "java") == {
        "Bar": ["src/main/java/com/y/Bar.java"],
        "qux": ["src/main/java/com/y/Baz.java"],
        "Inner": ["src/main/java/com/y/Bar.java"],
        "List": [],
    }
