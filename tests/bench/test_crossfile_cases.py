"""The cross-file benchmark's cases (bench/crossfile_workload.py): drawn from the packages
installed here and npm's lib/, and well-formed: NAME defined at top level in S, absent from
F before the cursor, the cursor right after `module.`. Fast: no model, no server."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bench.context import Config
from bench.crossfile_workload import (
    CrossfileCase,
    build_tree,
    candidates,
    draw_cases,
    javascript_definitions,
    load_package,
    load_packages,
    other_files,
    python_definitions,
    workload_files,
)
from bench.scenarios import crossfile


def _binds(case: CrossfileCase) -> bool:
    """F binds `module` to S by an import (Python) or a require (JavaScript)."""
    f, s = case.file, case.sibling
    if case.language == "javascript":
        rx = re.compile(rf"^(?:const|let|var)\s+{re.escape(case.module)}\s*=\s*"
                        r"require\(\s*['\"](\.{1,2}/[^'\"]+)['\"]\s*\)", re.M)
        targets = [(f.path.parent / m.group(1)).resolve() for m in rx.finditer(f.text)]
        return any(s.path in (t, Path(f"{t}.js"), t / "index.js") for t in targets)
    s_module = s.name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    for node in ast.walk(ast.parse(f.text)):
        if isinstance(node, ast.Import):
            if any(a.asname == case.module and a.name == s_module for a in node.names):
                return True
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if (a.asname or a.name) == case.module and s_module.endswith(
                        "." + a.name if node.module is None else f"{node.module}.{a.name}"):
                    return True
    return False


def assert_well_formed(case: CrossfileCase) -> None:
    text = case.file.text
    before = text[: case.cursor]
    assert before.endswith(case.module + "."), case.key  # cursor right after `module.`
    assert not re.match(r"[\w$]", before[-len(case.module) - 2: -len(case.module) - 1] or " ")
    assert text[case.cursor:].startswith(case.name) and not re.match(
        r"[\w$]", text[case.cursor + len(case.name): case.cursor + len(case.name) + 1] or " ")
    assert case.name not in before, case.key  # NAME nowhere earlier in F, not even in a word
    defs = (python_definitions if case.language == "python" else javascript_definitions)(
        case.sibling.text)
    assert case.name in defs, case.key  # NAME defined at top level in S
    assert case.sibling is not case.file
    assert case.sibling.path.is_relative_to(case.package.root)
    assert _binds(case), case.key
    # The document: F with the cursor's line cut at the cursor, the lines below kept.
    assert case.rest.startswith(case.name) and "\n" not in case.rest
    assert case.document == before + text[case.cursor + len(case.rest):]
    assert case.document.count("\n") == text.count("\n")


@pytest.fixture(scope="module")
def packages():
    return load_packages()


def test_the_quick_variant_draws_well_formed_cases(packages):
    n = Config.make(True, 0, 1).crossfile_cases
    draw = draw_cases(packages, n, seed=0)
    assert len(draw.cases) == n
    for case in draw.cases:
        assert_well_formed(case)
    assert sum(p["drawn"] for p in draw.packages.values()) == n
    # The same seed draws the same cases; the files are recorded with their SHA-256.
    assert [c.key for c in draw_cases(packages, n, seed=0).cases] == [c.key for c in draw.cases]
    names = {f["name"] if isinstance(f, dict) else f.name
             for f in workload_files(draw.cases, 0)}
    assert {c.file.name for c in draw.cases} | {c.sibling.name for c in draw.cases} <= names
    if any(p.language == "javascript" for p in packages):  # npm is on the machine
        assert {c.language for c in draw.cases} == {"python", "javascript"}


def test_the_open_config_opens_other_files_of_the_package(packages):
    case = draw_cases(packages, 1, seed=0).cases[0]
    others = other_files(case, 3, seed=0)
    assert len(others) == 3 and len({g.name for g in others}) == 3
    assert case.file not in others and case.sibling not in others
    assert all(g.path.is_relative_to(case.package.root) for g in others)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_python_extraction_keeps_only_lines_that_need_the_sibling(tmp_path):
    root = tmp_path / "pkg"
    _write(root, {
        "__init__.py": "",
        "helpers.py": "import os\n\ndef parse_header(x):\n    return x\n\n"
                      "LIMIT = 3\n\nclass Reader:\n    def method_only(self):\n        pass\n",
        "sub/__init__.py": "",
        "sub/user.py": "from .. import helpers\nimport pkg.helpers as h\n\n"
                       "# LIMIT is used below\n"
                       "a = helpers.parse_header(1)\n"
                       "b = helpers.LIMIT + h.Reader()\n"
                       "c = helpers.method_only\n"
                       "d = helpers.os\n"
                       "e = helpers.parse_header(2)\n",
    })
    pkg = load_package("pkg", "python", root, tmp_path)
    found = {(c.module, c.name): c for c in candidates(pkg)}
    # LIMIT appears in a comment above; method_only is not top level; os is an import;
    # the second parse_header has NAME earlier in the file.
    assert set(found) == {("helpers", "parse_header"), ("h", "Reader")}
    for case in found.values():
        assert_well_formed(case)
    assert found[("h", "Reader")].rest == "Reader()"
    assert found[("helpers", "parse_header")].line == 4


def test_javascript_extraction_reads_requires_and_exports(tmp_path):
    root = tmp_path / "lib"
    _write(root, {
        "util/read.js": "function readOTP (msg) {}\nconst helper = () => 1\n"
                        "module.exports = {\n  otp: readOTP,\n  helper,\n}\n",
        "cmd.js": "const read = require('./util/read.js')\n"
                  "// read.helper is documented\n"
                  "const x = read.otp('code')\n"
                  "const y = 'read.missing'\n"
                  "const z = read.helper()\n"
                  "const readOTPFn = read.readOTP\n",
    })
    pkg = load_package("lib", "javascript", root, tmp_path)
    found = candidates(pkg)
    # read.helper: named in the comment above; read.missing: in a string; read.readOTP:
    # inside the longer word before it on its own line.
    assert [(c.module, c.name, c.rest) for c in found] == [("read", "otp", "otp('code')")]
    assert_well_formed(found[0])


def test_the_big_workspace_is_written(tmp_path):
    src = tmp_path / "src"
    _write(src, {"a.py": "x = 1\n", "b.js": "let y = 2\n"})
    sources = [("py/a.py", src / "a.py"), ("npm-lib/b.js", src / "b.js")]
    written = build_tree(tmp_path / "tree", 5, sources)
    files = sorted(p.relative_to(tmp_path / "tree").as_posix()
                   for p in (tmp_path / "tree").rglob("*") if p.is_file())
    assert written["files"] == 5 == len(files)
    assert files[:2] == ["copy-0/npm-lib/b.js", "copy-0/py/a.py"]
    assert "copy-2/py/a.py" in files


def test_the_summary_reads_helios_with_and_without_context():
    """`off` records as today's Helios gives them (no `engine.context` in helios.status),
    `workspace` ones as the interface promises (`last_prompt` with relative paths)."""
    recs = []
    for config in ("off", "workspace"):
        for i, hit in enumerate((False, True)):
            on = config == "workspace"
            recs.append({"config": config, "case": i, "package": "p", "language": "python",
                         "kind": "ask", "hit": hit and on, "exact": False,
                         "latency": 0.1, "error": None, "idle_wait": 1.0,
                         "idle_timed_out": False, "context_enabled": True if on else None,
                         "last_prompt": {"files": ["sub/s.py" if i else "t.py"],
                                         "tokens": 300} if on else None,
                         "sibling": "p/sub/s.py", "sibling_rel": "sub/s.py",
                         "file_rel": "t.py"})
            recs.append({"config": config, "kind": "key", "latency": 0.05, "error": None,
                         "model_ran": True, "evaluated": 2, "prompt_tokens": 900})
    s = crossfile.summarize({"records": recs, "configs": ["off", "workspace"], "pause": 1.0})
    assert s["configs"]["workspace"]["hit_points_over_off"] == 0.5
    assert s["configs"]["workspace"]["sibling_in_prompt"] == 0.5
    assert s["configs"]["workspace"]["self_in_prompt"] == 0.5
    assert s["configs"]["workspace"]["last_prompt_tokens"]["median"] == 300
    assert s["configs"]["off"]["context_reported"] == 0
    assert s["keys"]["ratio"]["p95"] == 1.0
    from bench.report import _target

    targets = {t["id"]: t["status"] for t in crossfile.check_targets(s, _target)}
    assert targets == {"7-hits-open": "N/A", "7-hits-workspace": "PASS", "7-keys-p95": "PASS"}
    # A Helios that reports no context: the keystroke ratio is not the cost of context.
    for r in recs:
        if r["kind"] == "ask":
            r["context_enabled"] = None
    s = crossfile.summarize({"records": recs, "configs": ["off", "workspace"], "pause": 1.0})
    t = {t["id"]: t for t in crossfile.check_targets(s, _target)}
    assert t["7-keys-p95"]["status"] == "N/A" and "reported no context" in t["7-keys-p95"][
        "shown"]
    md = "\n".join(crossfile.markdown(s, {"records": recs}))
    assert "## 6. Cross-file context" in md and "| p | 0/2 · 0 | 1/2 · 0 |" in md


def test_helios_is_idle_only_when_it_neither_works_nor_indexes():
    def status(busy=False, queued=0, state=None):
        engine = {"busy": busy, "queued": queued}
        if state is not None:
            engine["context"] = {"enabled": True, "workspace": {"files": 3, "state": state}}
        return {"engine": engine}

    assert crossfile.idle(status())  # today's Helios: no context fields at all
    assert not crossfile.idle(status(busy=True)) and not crossfile.idle(status(queued=1))
    assert not crossfile.idle(status(state="indexing"))
    assert crossfile.idle(status(state="ready")) and crossfile.idle(status(state="idle"))
    assert not crossfile.idle({})  # no engine in the answer: not known to be idle


def test_an_index_is_ready_with_files_or_after_indexing_was_seen():
    ready = {"state": "ready", "files": 0}
    assert not crossfile.index_ready(None, False, 0)
    assert not crossfile.index_ready({"state": "indexing", "files": 10}, True, 0)
    assert crossfile.index_ready({"state": "ready", "files": 10}, False, 0)
    assert not crossfile.index_ready(ready, False, 1.0)  # maybe not picked up yet
    assert crossfile.index_ready(ready, True, 0)
    assert crossfile.index_ready(ready, False, crossfile.STALE_READY)


def test_a_file_of_the_same_name_in_a_subfolder_is_not_the_file():
    r = {"file_rel": "mypy.py", "file": "pydantic/mypy.py",
         "last_prompt": {"files": ["v1/mypy.py", "main.py"]}}
    assert not crossfile._in_prompt(r, "file_rel")
    r["last_prompt"]["files"].append("/tmp/ws/pydantic/mypy.py")
    assert crossfile._in_prompt(r, "file_rel")
    assert crossfile._in_prompt({"sibling_rel": "sub/s.py", "last_prompt": {"files": [
        "./sub/s.py"]}}, "sibling_rel")
