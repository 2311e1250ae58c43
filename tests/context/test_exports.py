"""exports.module_names: every name `module.NAME` may use, or None when not all are known."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from helios_lsp.engine.context.exports import module_names

PYTHON = '''\
from __future__ import annotations
import os, json as _json
import collections.abc
from typing import Any as _Any, Final
from . import sibling

ACCEPT: Final[str] = "Accept"
first, (second, *rest) = 1, (2, 3)
a = b = 0
counter += 1
type Vector = list[float]

def helper(x): ...

@decorated
class Thing: ...

if os.name == "nt":
    WINDOWS_ONLY = 1
else:
    def posix_only(): ...
try:
    import fast as speedup
except ImportError:
    speedup = None
for loop_var in range(3):
    pass

def outer():
    inner = 1  # a function's local: not the module's
'''


def test_python_names_are_everything_bound_at_module_level():
    names = module_names(PYTHON, "python", "pkg/mod.py")
    assert names == {
        "annotations", "os", "_json", "collections", "_Any", "Final", "sibling", "ACCEPT",
        "first", "second", "rest", "a", "b", "counter", "Vector", "helper", "Thing",
        "WINDOWS_ONLY", "posix_only", "speedup", "loop_var", "outer",
    }


@pytest.mark.parametrize("text, path", [
    ("from os.path import *\nX = 1\n", "m.py"),  # a star import: anything may come in
    ("X = 1\ndef __getattr__(name): ...\n", "m.py"),  # any name may be answered
    ("X = 1\n", "pkg/__init__.py"),  # its submodules are attributes too
    ("X = 1\ndef broken(:\n", "m.py"),  # a half-written file may hide definitions
    ("", "m.py"),
])
def test_python_modules_whose_names_cannot_all_be_known_are_open(text, path):
    assert module_names(text, "python", path) is None


@pytest.mark.parametrize("module", ["json.decoder", "email.utils", "logging.handlers",
                                    "http.cookies", "argparse", "textwrap"])
def test_python_names_cover_what_the_module_really_has(module: str):
    """Checked against real modules of the standard library, imported."""
    mod = importlib.import_module(module)
    names = module_names(Path(mod.__file__).read_text(), "python", mod.__file__)
    assert names is not None
    real = {k for k in vars(mod) if not k.startswith("__")}
    assert real <= names


JS = '''\
const x = require('./x')
function find () {}
module.exports.insert = insert
exports.compact = module.exports.lsStream = compact
module.exports = { find, 'quoted': 1, other: find, method () {} }
'''


def test_commonjs_names_are_what_it_exports():
    assert module_names(JS, "javascript", "lib/index.js") == {
        "insert", "compact", "lsStream", "find", "quoted", "other", "method"}


def test_es_module_names_are_its_exports():
    text = ("export function f () {}\nexport const a = 1, b = 2\nexport class C {}\n"
            "const hidden = 1\nconst d = 2\nexport { d, hidden as shown }\n"
            "export default f\n")
    assert module_names(text, "javascript", "m.mjs") == {
        "f", "a", "b", "C", "d", "shown", "default"}
    ts = "export interface I { a: number }\nexport type T = string\nexport enum E { A }\n"
    assert module_names(ts, "typescript", "m.ts") == {"I", "T", "E"}


@pytest.mark.parametrize("text", [
    "class Fetcher {}\nmodule.exports = Fetcher\n",  # its statics are not looked for
    "module.exports = { ...base, a: 1 }\n",
    "module.exports = { [key]: 1 }\n",
    "export * from './other'\nexport const a = 1\n",
    "function local () {}\n",  # exports nothing we can see
])
def test_javascript_modules_whose_names_cannot_all_be_known_are_open(text):
    assert module_names(text, "javascript", "m.js") is None


def test_other_languages_are_open():
    assert module_names("package main\nfunc F() {}\n", "go", "m.go") is None


def test_a_module_of_this_interpreter_has_no_name_left_out():
    """The module this test imports from, as a sanity check on a real, typed file."""
    mod = sys.modules[module_names.__module__]
    names = module_names(Path(mod.__file__).read_text(), "python", mod.__file__)
    assert names is not None and {"module_names", "MAX_NAMES"} <= names
