"""The cross-file workload: lines of real multi-file packages that need another file.

A case is a line of a file F of a package P that uses `module.NAME`, where `module` is
bound in F by an import of another module S of P (Python: `from . import helpers`,
`from .web import web_request as wr`, `import aiohttp.helpers as h`, ...; JavaScript:
`const x = require('./x')`), NAME is defined at top level in S, and NAME occurs nowhere in
F before the cursor (not even inside a longer word). The cursor sits right after
`module.`; the expected text is NAME (an identifier hit) and the rest of the line (an
exact match). Without S the model can only guess NAME.

The packages are the ones installed with the project (site-packages of the running
interpreter) and npm's own `lib/` (JavaScript). Nobody here wrote them; their versions
move with the installs, so the report records each file's SHA-256. Cases are drawn with
`random.Random(seed)`, spread over packages and, within one, over files.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import shutil
import subprocess
import sysconfig
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Multi-file packages the project installs (dependencies and test extras), in report order.
PYTHON_PACKAGES: tuple[str, ...] = (
    "aiohttp", "pygls", "pydantic", "lsprotocol", "cattrs", "yarl", "_pytest",
)
# JavaScript: npm's own lib/, and the lib/ of packages by npm's team that npm ships in its
# node_modules (npm's lib/ alone has almost no `x.NAME` of a sibling: its modules export
# one class or function each).
NPM_PACKAGES: tuple[str, ...] = (
    "npm", "pacote", "cacache", "@npmcli/config", "npm-registry-fetch",
)
SKIP_DIRS = {"__pycache__", "tests", "test", "testing", "node_modules"}
MIN_NAME = 3  # `module.x`: too short to say anything about context
MAX_FILE_BYTES = 400_000  # a generated giant (lsprotocol/types.py) is a fine S, not an F
MAX_PER_FILE = 2  # cases per file F, so a package's cases come from several files
_IDENT = r"[A-Za-z_$][\w$]*"


@dataclass(frozen=True)
class PackageFile:
    name: str  # relative to the package's parent, e.g. "aiohttp/web_app.py"
    path: Path
    text: str
    sha256: str

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Package:
    name: str  # "aiohttp", "npm"
    language: str  # LSP language id: "python", "javascript"
    root: Path  # the package's directory: the workspace folder of the `workspace` config
    files: dict[str, PackageFile] = field(repr=False, compare=False)
    version: str | None = None

    def rel(self, f: PackageFile) -> str:
        """`f`'s path relative to the package's directory (as a workspace sees it)."""
        return f.path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class CrossfileCase:
    package: Package
    file: PackageFile  # F: where the cursor is
    sibling: PackageFile  # S: where NAME is defined
    module: str  # the name F binds S to
    name: str  # NAME
    line: int  # 0-based line of the cursor in F
    cursor: int  # offset in F's text, right after `module.`

    @property
    def language(self) -> str:
        return self.package.language

    @property
    def prefix(self) -> str:
        return self.file.text[: self.cursor]

    @property
    def rest(self) -> str:
        """What a perfect suggestion is: NAME and the rest of the line."""
        end = self.file.text.find("\n", self.cursor)
        return self.file.text[self.cursor: len(self.file.text) if end < 0 else end]

    @property
    def suffix(self) -> str:
        """The lines below the cursor's (the rest of its own line removed)."""
        end = self.file.text.find("\n", self.cursor)
        return "" if end < 0 else self.file.text[end:]

    @property
    def document(self) -> str:
        return self.prefix + self.suffix

    @property
    def key(self) -> str:
        return f"{self.file.name}:{self.line + 1}:{self.name}"


# --- finding the packages -------------------------------------------------------------


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def npm_lib() -> Path | None:
    """npm's own `lib/` directory, from `npm root -g` (or next to the npm on PATH)."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    candidates = [Path(npm).resolve().parent.parent / "lib"]  # .../npm/bin/npm-cli.js
    try:
        out = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()) / "npm" / "lib")
    except (OSError, subprocess.TimeoutExpired):
        pass
    for c in candidates:
        if (c / "npm.js").is_file():
            return c
    return None


def load_package(name: str, language: str, root: Path, base: Path,
                 version: str | None = None) -> Package:
    """The package in directory `root`, its files named relative to `base`."""
    return Package(name, language, root,
                   _load(root, base, ".py" if language == "python" else ".js"), version)


def _load(root: Path, base: Path, suffix: str) -> dict[str, PackageFile]:
    files = {}
    for path in sorted(root.rglob(f"*{suffix}")):
        rel_parts = path.relative_to(root).parts
        if any(p in SKIP_DIRS for p in rel_parts[:-1]) or not path.is_file():
            continue
        if path.stat().st_size > MAX_FILE_BYTES * 4:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        name = path.relative_to(base).as_posix()
        files[name] = PackageFile(name, path, text, hashlib.sha256(text.encode()).hexdigest())
    return files


def load_packages(python: tuple[str, ...] = PYTHON_PACKAGES,
                  javascript: tuple[str, ...] = NPM_PACKAGES) -> list[Package]:
    """The packages found on this machine (a missing one is left out), Python and
    JavaScript alternating (so a handful of cases drawn round robin has both)."""
    import importlib.metadata as md

    py, js = [], []
    sp = site_packages()
    dists = md.packages_distributions()
    for name in python:
        root = sp / name
        if (root / "__init__.py").is_file():
            dist = (dists.get(name) or [name])[0]
            try:
                version = md.version(dist)
            except md.PackageNotFoundError:
                version = None
            py.append(load_package(name, "python", root, sp, version))
    lib = npm_lib() if javascript else None
    if lib is not None:
        npm_dir = lib.parent
        for name in javascript:
            root = lib if name == "npm" else npm_dir / "node_modules" / name / "lib"
            if root.is_dir():
                base = npm_dir.parent if name == "npm" else npm_dir / "node_modules"
                js.append(load_package(name, "javascript", root, base,
                                       _npm_version(root.parent / "package.json")))
    out: list[Package] = []
    for i in range(max(len(py), len(js))):
        out += py[i:i + 1] + js[i:i + 1]
    return out


def _npm_version(package_json: Path) -> str | None:
    import json

    try:
        return str(json.loads(package_json.read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --- Python ---------------------------------------------------------------------------


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements run at import time: the module's own, and those in its top-level if /
    try / with blocks (`if TYPE_CHECKING:`, import fallbacks), not in functions."""
    out: list[ast.stmt] = []
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        out.append(node)
        if isinstance(node, ast.If | ast.With):
            todo[:0] = [*node.body, *getattr(node, "orelse", [])]
        elif isinstance(node, ast.Try):
            todo[:0] = [*node.body, *node.orelse, *node.finalbody,
                        *(s for h in node.handlers for s in h.body)]
    return out


def python_definitions(text: str) -> set[str]:
    """Names S defines at top level: functions, classes, assigned names (not imports)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in _module_level(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for t in ast.walk(target):
                    if isinstance(t, ast.Name):
                        names.add(t.id)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(
                node.target, ast.Name):
            names.add(node.target.id)
    return names


def _python_module_file(pkg: Package, dotted: str) -> PackageFile | None:
    base = pkg.root.parent
    for rel in (dotted.replace(".", "/") + ".py", dotted.replace(".", "/") + "/__init__.py"):
        f = pkg.files.get(rel)
        if f is not None and f.path == base / rel:
            return f
    return None


def _python_bindings(pkg: Package, f: PackageFile, tree: ast.Module
                     ) -> dict[str, tuple[PackageFile, int]]:
    """Names F binds to another module of the package: name -> (S, line of the import)."""
    parts = f.name[: -len(".py")].split("/")
    package_parts = parts[:-1]  # F's package (an __init__.py is its own package)
    out: dict[str, tuple[PackageFile, int]] = {}
    for node in _module_level(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name.split(".")[0] == pkg.name:
                    s = _python_module_file(pkg, alias.name)
                    if s is not None:
                        out[alias.asname] = (s, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package_parts):
                    continue
                anchor = package_parts[: len(package_parts) - (node.level - 1)]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != pkg.name:
                continue
            for alias in node.names:
                s = _python_module_file(pkg, f"{module}.{alias.name}")  # a submodule
                if s is not None:
                    out[alias.asname or alias.name] = (s, node.lineno)
    return {k: v for k, v in out.items() if v[0] is not f}


def _char_col(line: str, byte_col: int) -> int:
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "replace"))


def python_cases(pkg: Package) -> list[CrossfileCase]:
    cases = []
    defs_cache: dict[str, set[str]] = {}
    for f in pkg.files.values():
        if len(f.text) > MAX_FILE_BYTES:
            continue
        try:
            tree = ast.parse(f.text)
        except (SyntaxError, ValueError):
            continue
        bindings = _python_bindings(pkg, f, tree)
        if not bindings:
            continue
        lines = f.text.split("\n")
        starts = [0]
        for ln in lines:
            starts.append(starts[-1] + len(ln) + 1)
        seen: set[str] = set()
        uses = sorted(
            (n.value.end_lineno, n.value.end_col_offset, n.value.id, n.attr)
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load)
            and isinstance(n.value, ast.Name) and n.value.id in bindings
            and n.value.end_lineno is not None and n.value.end_col_offset is not None)
        for lineno, byte_col, module, name in uses:
            s, import_line = bindings[module]
            if name in seen or lineno <= import_line:
                continue
            seen.add(name)
            line = lines[lineno - 1]
            col = _char_col(line, byte_col)
            if not line[col:].startswith("." + name):  # `module .NAME`, a line break...
                continue
            case = _case(pkg, f, s, module, name, lineno - 1, starts[lineno - 1] + col + 1)
            if case is None:
                continue
            if s.name not in defs_cache:
                defs_cache[s.name] = python_definitions(s.text)
            if name in defs_cache[s.name]:
                cases.append(case)
    return cases


# --- JavaScript -----------------------------------------------------------------------

_REQUIRE = re.compile(rf"^(?:const|let|var)\s+({_IDENT})\s*=\s*require\(\s*(['\"])"
                      r"(\.{1,2}/[^'\"]+)\2\s*\)\s*;?\s*$")
_JS_DEFS = (
    re.compile(rf"^(?:async\s+)?function\s*\*?\s*({_IDENT})\s*\("),
    re.compile(rf"^class\s+({_IDENT})\b"),
    re.compile(rf"^(?:const|let|var)\s+({_IDENT})\s*="),
    re.compile(rf"^(?:module\.)?exports\.({_IDENT})\s*="),
)


_EXPORTS_OBJECT = re.compile(r"^module\.exports\s*=\s*\{(.*)$")
_OBJECT_KEY = re.compile(rf"^\s*(?:async\s+)?({_IDENT})\s*(?:[:,(]|$)")


def javascript_definitions(text: str) -> set[str]:
    """Names S defines at top level (column 0): functions, classes, variables,
    `exports.NAME =` / `module.exports.NAME =`, and the keys of a top-level
    `module.exports = { NAME: ..., OTHER, ... }` (npm's style: `otp: readOTP`)."""
    names = set()
    in_exports = False
    for line in text.split("\n"):
        if in_exports:
            if line.startswith("}"):
                in_exports = False
                continue
            m = _OBJECT_KEY.match(line)
            if m and line.startswith("  ") and not line.startswith("   "):
                names.add(m.group(1))
            continue
        m = _EXPORTS_OBJECT.match(line)
        if m:
            inline = m.group(1)
            if "}" in inline:  # all on one line: `module.exports = { a, b }`
                names.update(k.strip().split(":")[0].strip()
                             for k in inline.split("}")[0].split(","))
            else:
                in_exports = True
            continue
        for rx in _JS_DEFS:
            m = rx.match(line)
            if m:
                names.add(m.group(1))
    return {n for n in names if re.fullmatch(_IDENT, n)}


def _js_module_file(pkg: Package, f: PackageFile, spec: str) -> PackageFile | None:
    target = (f.path.parent / spec).resolve()
    for path in (target, Path(f"{target}.js"), target / "index.js"):
        if path.is_file() and path.is_relative_to(pkg.root):
            found = next((g for g in pkg.files.values() if g.path == path), None)
            if found is not None:
                return found
    return None


def javascript_cases(pkg: Package) -> list[CrossfileCase]:
    cases = []
    for f in pkg.files.values():
        lines = f.text.split("\n")
        bindings: dict[str, tuple[PackageFile, int]] = {}
        for i, line in enumerate(lines):
            m = _REQUIRE.match(line)
            if m:
                s = _js_module_file(pkg, f, m.group(3))
                if s is not None and s is not f:
                    bindings[m.group(1)] = (s, i)
        if not bindings:
            continue
        use = re.compile(rf"(?<![\w$.])({'|'.join(map(re.escape, bindings))})\.({_IDENT})")
        seen: set[str] = set()
        offset = 0
        for i, line in enumerate(lines):
            stripped = line.lstrip()
            if not stripped.startswith(("//", "*", "/*")):
                for m in use.finditer(line):
                    module, name = m.group(1), m.group(2)
                    s, import_line = bindings[module]
                    if i <= import_line or name in seen:
                        continue
                    seen.add(name)
                    if _in_js_string(line, m.start()):
                        continue
                    case = _case(pkg, f, s, module, name, i, offset + m.start(2))
                    if case is not None and name in javascript_definitions(s.text):
                        cases.append(case)
            offset += len(line) + 1
    return cases


def _in_js_string(line: str, col: int) -> bool:
    """Whether `col` is inside a '...' or "..." literal (template literals count as code:
    `${x.NAME}` is a use)."""
    quote = None
    for ch in line[:col]:
        if quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = None
    return quote is not None


# --- cases ----------------------------------------------------------------------------


def _case(pkg: Package, f: PackageFile, s: PackageFile, module: str, name: str, line: int,
          cursor: int) -> CrossfileCase | None:
    """The case, or None when it does not test cross-file context."""
    if len(name) < MIN_NAME or name.startswith("__"):
        return None
    if name in f.text[:cursor]:
        # F itself already has it, even inside a longer word (`isUmask = ...typeDefs.Umask`):
        # the model could copy it
        return None
    return CrossfileCase(pkg, f, s, module, name, line, cursor)


def candidates(pkg: Package) -> list[CrossfileCase]:
    found = python_cases(pkg) if pkg.language == "python" else javascript_cases(pkg)
    return sorted(found, key=lambda c: (c.file.name, c.cursor))


@dataclass
class Draw:
    cases: list[CrossfileCase]
    # per package: language, version, candidates found (None: not looked at, the draw
    # was full before it), the files they are in, cases drawn
    packages: dict[str, dict[str, Any]]


def draw_cases(packages: list[Package], n: int, seed: int) -> Draw:
    """`n` cases spread evenly over the packages that have any, and within a package over
    its files (at most MAX_PER_FILE per file), seeded. Sorted by package, then file and
    place."""
    rng = random.Random(f"crossfile:{seed}")
    counts: dict[str, dict[str, Any]] = {
        p.name: {"language": p.language, "version": p.version, "candidates": None,
                 "files": None, "drawn": 0} for p in packages}
    pools: list[tuple[Package, list[CrossfileCase]]] = []
    for p in packages:
        if len(pools) >= n:  # round robin gives the packages after these nothing
            break
        c = candidates(p)
        counts[p.name].update(candidates=len(c), files=len({k.file.name for k in c}))
        if c:
            pools.append((p, c))
    quota = {p.name: 0 for p, _ in pools}
    capacity = {}
    for p, c in pools:
        per_file: dict[str, int] = defaultdict(int)
        for case in c:
            per_file[case.file.name] += 1
        capacity[p.name] = sum(min(v, MAX_PER_FILE) for v in per_file.values())
    left = n
    while left > 0:  # one at a time, round robin, to packages that still have cases
        progressed = False
        for p, _ in pools:
            if left > 0 and quota[p.name] < capacity[p.name]:
                quota[p.name] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    out = []
    for p, c in pools:
        by_file: dict[str, list[CrossfileCase]] = defaultdict(list)
        for case in c:
            by_file[case.file.name].append(case)
        names = sorted(by_file)
        rng.shuffle(names)
        for name in names:
            rng.shuffle(by_file[name])
        chosen: list[CrossfileCase] = []
        for round_ in range(MAX_PER_FILE):
            for name in names:
                if len(chosen) < quota[p.name] and round_ < len(by_file[name]):
                    chosen.append(by_file[name][round_])
        counts[p.name]["drawn"] = len(chosen)
        out += sorted(chosen, key=lambda k: (k.file.name, k.cursor))
    return Draw(out, counts)


def other_files(case: CrossfileCase, k: int, seed: int) -> list[PackageFile]:
    """`k` other files of the case's package (not F, not S), seeded: the `open` config's
    unrelated tabs. Files of F's own directory first, as an editor's tabs tend to be."""
    rng = random.Random(f"crossfile-open:{seed}:{case.key}")
    pool = [g for g in case.package.files.values()
            if g is not case.file and g is not case.sibling and len(g.text) <= MAX_FILE_BYTES
            and g.text.strip()]
    near = [g for g in pool if g.path.parent == case.file.path.parent]
    far = [g for g in pool if g.path.parent != case.file.path.parent]
    rng.shuffle(near)
    rng.shuffle(far)
    return (near + far)[:k]


def workload_files(cases: list[CrossfileCase], seed: int, k_open: int = 3
                   ) -> list[PackageFile]:
    """Every file a run reads: each case's F, S and the `open` config's other files."""
    seen: dict[str, PackageFile] = {}
    for c in cases:
        for f in (c.file, c.sibling, *other_files(c, k_open, seed)):
            seen.setdefault(f.name, f)
    return sorted(seen.values(), key=lambda f: f.name)


# --- a copy on disk -------------------------------------------------------------------


def copy_package(pkg: Package, dest: Path) -> Path:
    """A copy of the package's directory under `dest` (what a checkout would hold), without
    compiled caches. Used as the workspace folder, so Helios's rule of skipping virtualenvs
    and node_modules (site-packages and npm live in them) does not hide the package. A
    scoped name (@npmcli/config) nests, as in node_modules."""
    target = dest / pkg.name
    if not target.exists():
        shutil.copytree(pkg.root, target, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


# Directory names a workspace indexer skips by rule (virtualenvs, dependencies, build
# output, caches): the tree keeps none, so every file written is one it should index.
_TREE_SKIP = {"node_modules", "venv", "env", "build", "dist", "__pycache__", "site-packages"}


def tree_sources() -> list[tuple[str, Path]]:
    """Source files for the big workspace, sorted: every .py of site-packages and every
    .js of npm's lib/, each with the path it gets in the tree."""
    out: list[tuple[str, Path]] = []
    roots = [(site_packages(), "py", "*.py")]
    lib = npm_lib()
    if lib is not None:
        roots.append((lib, "npm-lib", "*.js"))
    for root, label, pattern in roots:
        for path in sorted(root.rglob(pattern)):
            parts = path.relative_to(root).parts
            if any(p in _TREE_SKIP or p.startswith(".") for p in parts[:-1]):
                continue
            if path.is_file() and not path.is_symlink():
                out.append((f"{label}/{'/'.join(parts)}", path))
    return out


def build_tree(dest: Path, n_files: int, sources: list[tuple[str, Path]] | None = None
               ) -> dict[str, int]:
    """A workspace of `n_files` source files under `dest`, copied from `sources` (default
    `tree_sources()`), in rounds (round k under `copy-k/`) until there are enough, like a
    monorepo that vendors the same libraries twice. Returns what was written."""
    sources = tree_sources() if sources is None else sources
    if not sources:
        raise ValueError("no source files to build a tree from")
    total = 0
    for i in range(n_files):
        rel, path = sources[i % len(sources)]
        target = dest / f"copy-{i // len(sources)}" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        data = path.read_bytes()
        target.write_bytes(data)
        total += len(data)
    return {"files": n_files, "bytes": total, "distinct_sources": min(n_files, len(sources))}
