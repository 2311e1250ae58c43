"""From an import to the files it names, per language.

Only files the library knows count (workspace files it indexed, open documents): the
`Files` given says which exist. Paths are absolute strings, normalised, with the host's
separators. Package managers' files (node_modules, site-packages, the Go module cache)
are never looked up: those imports stay unresolved.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from helios_lsp.engine.context.syntax import Import

_JS_EXTENSIONS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts", ".json")
_GO_FILES = 3  # files of an imported Go package given at most (its directory is the package)


@dataclass(frozen=True, slots=True)
class Files:
    """What the resolver may consult."""

    exists: Callable[[str], bool]  # a known file (indexed or open)
    in_dir: Callable[[str], Sequence[str]]  # known files directly in a directory
    go_module: Callable[[str], str | None]  # the module path a go.mod declares


def resolve(
    imp: Import, grammar: str, current: str, root: str | None, files: Files
) -> tuple[str, ...]:
    """The files an import of `current` (an absolute path) names, most relevant first.
    `root` is the workspace folder holding `current`: absolute imports are looked up
    in the directories between the two."""
    resolver = _RESOLVERS.get(grammar)
    if resolver is None:
        return ()
    here = os.path.dirname(current)
    ancestors = _ancestors(here, root)
    for module in imp.modules:
        found = resolver(module, current, here, ancestors, files)
        found = tuple(p for p in found if p != current)
        if found:
            return found
    return ()


def _ancestors(here: str, root: str | None) -> list[str]:
    """`here` and the directories above it up to `root` (just `here` without a root)."""
    out = [here]
    if root is None:
        return out
    root = os.path.normpath(root)
    path = here
    while path != root and path.startswith(root + os.sep):
        path = os.path.dirname(path)
        out.append(path)
    return out


def _first(candidates: Sequence[str], files: Files) -> tuple[str, ...]:
    for candidate in candidates:
        candidate = os.path.normpath(candidate)
        if files.exists(candidate):
            return (candidate,)
    return ()


# Directories above the folder where an absolute Python import may start.
_PACKAGE_DEPTH = 4


def _python(
    module: str, current: str, here: str, ancestors: list[str], files: Files
) -> tuple[str, ...]:
    rest = module.lstrip(".")
    level = len(module) - len(rest)
    parts = [p for p in rest.split(".") if p]
    if level:
        base = here
        for _ in range(level - 1):
            base = os.path.dirname(base)
        bases = [base]
    else:
        # Absolute: from the file's own directory up to the folder, then src/ layouts, then
        # above the folder: a folder that is itself the package (`pkg/` opened, imports
        # `pkg.sub`), or open files with no folder at all. Only files in the index or
        # open count, so looking higher finds nothing foreign.
        top = ancestors[-1]
        above = []
        for _ in range(_PACKAGE_DEPTH):
            parent = os.path.dirname(top)
            if parent == top:
                break
            above.append(top := parent)
        bases = [*ancestors, os.path.join(ancestors[-1], "src"), *above]
    candidates = []
    for base in bases:
        path = os.path.join(base, *parts)
        if parts:
            candidates += [path + ".py", os.path.join(path, "__init__.py")]
        else:
            candidates.append(os.path.join(path, "__init__.py"))
    return _first(candidates, files)


def _javascript(
    module: str, current: str, here: str, ancestors: list[str], files: Files
) -> tuple[str, ...]:
    if not module.startswith(("./", "../")) and module not in (".", ".."):
        return ()  # a package (node_modules) or an alias of a bundler
    base = os.path.normpath(os.path.join(here, *module.split("/")))
    candidates = [base]
    stem, ext = os.path.splitext(base)
    if ext in (".js", ".jsx", ".mjs", ".cjs"):
        # TypeScript sources import their compiled name: "./x.js" is ./x.ts.
        candidates += [stem + ".ts", stem + ".tsx", stem + ".mts", stem + ".cts"]
    candidates += [base + e for e in _JS_EXTENSIONS]
    candidates += [os.path.join(base, "index" + e) for e in _JS_EXTENSIONS]
    return _first(candidates, files)


def _c(module: str, current: str, here: str, ancestors: list[str], files: Files) -> tuple[str, ...]:
    parts = module.split("/")
    candidates = [os.path.join(here, *parts)]
    for base in ancestors:
        candidates += [
            os.path.join(base, *parts),
            os.path.join(base, "include", *parts),
            os.path.join(base, "src", *parts),
        ]
    return _first(candidates, files)


def _rust_module_dir(path: str) -> str:
    """The directory holding a Rust file's submodules."""
    name = os.path.basename(path)
    if name in ("mod.rs", "lib.rs", "main.rs"):
        return os.path.dirname(path)
    return os.path.splitext(path)[0]


def _rust_crate_dir(here: str, ancestors: list[str]) -> str | None:
    for base in ancestors:
        if os.path.isfile(os.path.join(base, "Cargo.toml")):
            return os.path.join(base, "src")
    return None


def _rust(
    module: str, current: str, here: str, ancestors: list[str], files: Files
) -> tuple[str, ...]:
    parts = [p for p in module.split("::") if p]
    if not parts:
        return ()
    bases: list[str]
    if parts[0] == "crate":
        crate = _rust_crate_dir(here, ancestors)
        bases = [crate] if crate else []
        parts = parts[1:]
    elif parts[0] in ("self", "super"):
        base = _rust_module_dir(current)
        if parts[0] == "self":
            parts = parts[1:]
        while parts and parts[0] == "super":
            base = os.path.dirname(base)
            parts = parts[1:]
        bases = [base]
    else:
        # 2018 paths: a module of the current one, else one at the crate's root.
        crate = _rust_crate_dir(here, ancestors)
        bases = [_rust_module_dir(current)] + ([crate] if crate else [])
    candidates = []
    for base in bases:
        # `a::b::Item`: the longest prefix that is a module file wins.
        for n in range(len(parts), 0, -1):
            path = os.path.join(base, *parts[:n])
            candidates += [path + ".rs", os.path.join(path, "mod.rs")]
        if not parts or len(parts) == 1:
            # An item of the base module itself (`use super::Thing`).
            candidates += [
                base + ".rs",
                os.path.join(base, "mod.rs"),
                os.path.join(base, "lib.rs"),
                os.path.join(base, "main.rs"),
            ]
    return _first(candidates, files)


def _go(
    module: str, current: str, here: str, ancestors: list[str], files: Files
) -> tuple[str, ...]:
    for base in ancestors:
        declared = files.go_module(os.path.join(base, "go.mod"))
        if declared is None:
            continue
        if module == declared:
            directory = base
        elif module.startswith(declared + "/"):
            directory = os.path.join(base, *module[len(declared) + 1 :].split("/"))
        else:
            return ()  # another module's package
        names = sorted(
            p for p in files.in_dir(directory) if p.endswith(".go") and not p.endswith("_test.go")
        )
        # The file named like the package first: it usually holds the main types.
        package = posixpath.basename(module)
        names.sort(key=lambda p: os.path.splitext(os.path.basename(p))[0] != package)
        return tuple(names[:_GO_FILES])
    return ()


def _java(
    module: str, current: str, here: str, ancestors: list[str], files: Files
) -> tuple[str, ...]:
    if module.endswith(".*"):
        return ()  # a whole package
    parts = module.split(".")
    candidates = []
    for n in (len(parts), len(parts) - 1):  # a.b.C, or a.b.C.Inner
        if n < 1:
            continue
        for base in ancestors:
            candidates.append(os.path.join(base, *parts[: n - 1], parts[n - 1] + ".java"))
    return _first(candidates, files)


_RESOLVERS = {
    "python": _python,
    "javascript": _javascript,
    "typescript": _javascript,
    "tsx": _javascript,
    "c": _c,
    "cpp": _c,
    "rust": _rust,
    "go": _go,
    "java": _java,
}


def read_go_module(path: str) -> str | None:
    """The module path a go.mod declares (its `module` line), or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f.read(64 << 10).splitlines():
                words = line.split("//", 1)[0].split()
                if len(words) >= 2 and words[0] == "module":
                    return words[1].strip('"`')
    except OSError:
        return None
    return None
