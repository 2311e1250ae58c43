"""ContextSources.select(): what is chosen, in which order, within which budget."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from helios_lsp.engine.context import ContextQuery, Snippet
from tests.context.helpers import indexed, write_tree

TASKS = '''"""Task queue helpers."""
import time

MAX_RETRIES = 3


class Task:
    """A unit of work."""

    def __init__(self, name, payload):
        self.name = name
        self.payload = payload

    def run(self, worker):
        return worker.execute(self.payload)


def schedule(task, delay=0.0):
    """Schedule a task."""
    time.sleep(delay)
    return task.run(None)
'''

BILLING = """def compute_invoice_total(items, tax_rate):
    subtotal = sum(item.price * item.quantity for item in items)
    return subtotal * (1 + tax_rate)


def format_invoice(invoice):
    return f"{invoice.number}: {invoice.total}"
"""

# Two functions like the code at the cursor, far apart: one file, two chunks.
REPORTS = (
    "def invoice_report(order, items, tax_rate):\n"
    "    subtotal = sum(item.price * item.quantity for item in items)\n"
    "    return order.number, subtotal * (1 + tax_rate)\n"
    + "\n".join(f"def filler_{i}(value):\n    return value + {i}\n" for i in range(40))
    + "\ndef invoice_summary(order, items, tax_rate):\n"
    "    subtotal = sum(item.price * item.quantity for item in items)\n"
    "    return subtotal\n"
)

MAIN = """from . import tasks
from .billing import compute_invoice_total


def handle(order):
    subtotal = sum(item.price * item.quantity for item in order.items)
    total = compute_invoice_total(order.items, order.tax_rate)
    t = tasks.
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/tasks.py": TASKS,
            "pkg/billing.py": BILLING,
            "pkg/reports.py": REPORTS,
            "pkg/unrelated.py": "def colour(r, g, b):\n    return (r, g, b)\n",
            "pkg/main.py": MAIN,
        },
    )
    return tmp_path


def _main_query(root: Path, text: str = MAIN) -> ContextQuery:
    path = root / "pkg/main.py"
    cursor = text.index("tasks.\n") + len("tasks.")
    return ContextQuery(f"file://{path}", path, "pkg/main.py", "python", text, cursor)


def _cost(snippets: tuple[Snippet, ...]) -> int:
    return sum(len(s.path) + len(s.text) for s in snippets)


@pytest.fixture
def sources(make_sources, project):
    sources = make_sources()
    sources.set_folders([project])
    indexed(sources, project)
    return sources


def test_order_imports_used_at_the_cursor_come_last(sources, project):
    snippets = sources.select(_main_query(project), 4000)
    kinds = [(s.kind, s.path) for s in snippets]
    # The module named at the cursor is nearest it; the other used import just before.
    assert kinds[-2:] == [("outline", "pkg/billing.py"), ("outline", "pkg/tasks.py")]
    assert snippets[-1].text == (
        "MAX_RETRIES = 3\n"
        "class Task:\n"
        '    """A unit of work."""\n'
        "    def __init__(self, name, payload):\n"
        "    def run(self, worker):\n"
        "def schedule(task, delay=0.0):\n"
        '    """Schedule a task."""\n'
    )
    chunks = [s for s in snippets if s.kind == "chunk"]
    assert chunks and snippets.index(chunks[-1]) < snippets.index(snippets[-2])
    # The most similar chunks are those computing the same subtotal.
    assert "subtotal = sum(item.price * item.quantity" in chunks[-1].text
    assert "pkg/unrelated.py" not in [s.path for s in chunks]
    assert all(s.text.endswith("\n") for s in snippets)


def test_never_the_current_document(sources, project):
    snippets = sources.select(_main_query(project), 10_000)
    assert snippets and all(s.path != "pkg/main.py" for s in snippets)
    # Also when the editor has it open under its key.
    query = _main_query(project)
    sources.document_opened(query.key, query.path, query.name, "python", MAIN)
    assert all(s.path != "pkg/main.py" for s in sources.select(query, 10_000))


def test_best_chunk_per_file(sources, project):
    snippets = sources.select(_main_query(project), 10_000)
    chunk_paths = [s.path for s in snippets if s.kind == "chunk"]
    assert chunk_paths.count("pkg/reports.py") == 1
    assert len(chunk_paths) == len(set(chunk_paths))


@pytest.mark.parametrize("budget", [0, 40, 120, 400, 1000, 3000, 100_000])
def test_budget_is_kept_with_whole_lines(sources, project, budget):
    snippets = sources.select(_main_query(project), budget)
    assert _cost(snippets) <= budget
    for s in snippets:
        assert s.text.endswith("\n")
        if s.kind == "chunk":
            assert s.text in (project / s.path).read_text()  # whole lines of the file


def test_same_inputs_same_block(sources, project, make_sources):
    query = _main_query(project)
    first = sources.select(query, 3000)
    assert sources.select(query, 3000) == first
    other = make_sources()
    other.set_folders([project])
    indexed(other, project)
    assert other.select(query, 3000) == first


def test_an_open_document_wins_over_its_file(sources, project):
    path = project / "pkg/reports.py"
    edited = REPORTS.replace("for item in items)", "for item in order.lines)")
    sources.document_opened(f"file://{path}", path, "pkg/reports.py", "python", edited)
    chunks = [s for s in sources.select(_main_query(project), 10_000) if s.kind == "chunk"]
    report = [s for s in chunks if s.path == "pkg/reports.py"]
    assert len(report) == 1
    assert "order.lines" in report[0].text and report[0].text not in REPORTS


def test_open_documents_outside_the_workspace(make_sources, tmp_path):
    sources = make_sources()
    text = "def handle(order):\n    total = compute_invoice_total(order.items, order.tax)\n"
    sources.document_opened("client/billing.py", None, "billing.py", "python", BILLING)
    sources.document_opened("client/notes.txt", None, "notes.txt", "plaintext", "colour\n")
    query = ContextQuery("client/main.py", None, "main.py", "python", text, len(text))
    snippets = sources.select(query, 2000)
    assert [(s.kind, s.path) for s in snippets] == [("chunk", "billing.py")]
    assert snippets[0].text == BILLING  # two small functions: one chunk


def test_mru_document_wins_a_tie(make_sources):
    sources = make_sources()
    body = "def same_helper(alpha, beta):\n    return alpha + beta\n"
    sources.document_opened("k/a.py", None, "a.py", "python", body)
    sources.document_opened("k/b.py", None, "b.py", "python", body)
    query = ContextQuery("k/c.py", None, "c.py", "python", "x = same_helper(alpha, beta)\n", 29)
    snippets = sources.select(query, 10_000)
    # b.py was used last: it is the better chunk; a.py's identical text is a duplicate.
    assert [(s.kind, s.path) for s in snippets] == [("chunk", "b.py")]


def test_recent_edits(sources, project):
    other = project / "pkg/notes.py"
    text = "".join(f"line_{i} = {i}\n" for i in range(30))
    sources.document_opened("k-notes", other, "pkg/notes.py", "python", text)
    edited = text.replace("line_15 = 15", "line_15 = compute_invoice_total(cart, 0.2)")
    sources.document_changed("k-notes", edited, edit_line=15)
    sources.document_changed("k-notes", edited, edit_line=16)  # merged with the one above
    query = _main_query(project)
    sources.document_changed(query.key, MAIN, edit_line=3)  # the current document: not shown
    snippets = sources.select(query, 4000)
    edits = [s for s in snippets if s.kind == "edit"]
    assert len(edits) == 1 and edits[0].path == "pkg/notes.py"
    assert edits[0].text == "".join(edited.splitlines(keepends=True)[13:20])
    assert sources.stats()["edits"] == 1  # the current document's edit is recorded, not shown
    sources.document_closed("k-notes")
    assert not [s for s in sources.select(query, 4000) if s.kind == "edit"]


def test_http_client_names_find_the_workspace_file(sources, project):
    """A client without paths sends a relative name: its imports still resolve."""
    query = _main_query(project)
    query = ContextQuery("client/pkg/main.py", None, "pkg/main.py", "python", MAIN, query.cursor)
    outlines = [s.path for s in sources.select(query, 4000) if s.kind == "outline"]
    assert outlines == ["pkg/billing.py", "pkg/tasks.py"]


def test_select_while_indexing_and_editing(make_sources, project):
    """Selections in threads while the index is built and documents change: no error,
    and only whole snippets."""
    write_tree(
        project,
        {f"extra/m{i}.py": f"def helper_{i}(items):\n    return items\n" for i in range(200)},
    )
    sources = make_sources()
    errors: list[BaseException] = []
    stop = threading.Event()

    def select_loop() -> None:
        try:
            while not stop.wait(0.001):  # requests as keystrokes come, not back to back
                for s in sources.select(_main_query(project), 3000):
                    assert s.text.endswith("\n")
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=select_loop) for _ in range(2)]
    for t in threads:
        t.start()
    sources.set_folders([project])
    for i in range(50):
        sources.document_opened(f"k{i % 5}", None, f"d{i % 5}.py", "python", f"v{i} = {i}\n" * i)
        sources.document_changed(f"k{i % 5}", f"w{i} = 1\n", edit_line=0)
    assert sources.wait_ready(30)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert sources.stats()["files"] == 206


def test_outline_of_a_large_module(make_sources, tmp_path):
    """A module too large to be parsed whole while indexing is outlined on demand."""
    big = "".join(f"def handler_{i}(request, response):\n    return {i}\n\n" for i in range(1200))
    assert len(big) > 32 << 10
    main = "from . import big\n\nbig."
    write_tree(tmp_path, {"app/__init__.py": "", "app/big.py": big, "app/main.py": main})
    sources = make_sources()
    sources.set_folders([tmp_path])
    indexed(sources, tmp_path)
    path = tmp_path / "app/main.py"
    query = ContextQuery("k", path, "app/main.py", "python", main, len(main))
    outline = [s for s in sources.select(query, 2000) if s.kind == "outline"]
    assert [s.path for s in outline] == ["app/big.py"]
    assert outline[0].text.startswith("def handler_0(request, response):\n")
    # Named on the cursor's line: it may take the whole outlines' share (half the budget).
    assert "return" not in outline[0].text and len(outline[0].text) <= 1000


@pytest.mark.parametrize("opened", [False, True])
def test_a_cut_outline_keeps_what_the_code_at_the_cursor_talks_about(make_sources, tmp_path,
                                                                     opened):
    """A module too long for its share, named at the cursor: the definitions whose names
    share words with the lines above the cursor are kept even far down the file (from the
    workspace index and from an open document alike), in the file's order."""
    names = [f"HEADER_{i:03}" for i in range(300)]
    names[250] = "CONTENT_ENCODING"
    hdrs = "".join(f'{n}: str = "{n.lower()}"\n' for n in names)
    main = "from . import hdrs\n\n\ndef parse(headers):\n    # the body's encoding\n" \
           "    enc = headers.get(hdrs."
    write_tree(tmp_path, {"app/__init__.py": "", "app/hdrs.py": hdrs, "app/main.py": main})
    sources = make_sources()
    sources.set_folders([tmp_path])
    indexed(sources, tmp_path)
    if opened:
        path = tmp_path / "app/hdrs.py"
        sources.document_opened(path.as_uri(), path, "app/hdrs.py", "python", hdrs)
    query = ContextQuery("k", tmp_path / "app/main.py", "app/main.py", "python", main,
                         len(main))
    text = next(s.text for s in sources.select(query, 2000) if s.kind == "outline")
    assert "CONTENT_ENCODING: str" in text and len(text) <= 1000
    assert text.startswith("HEADER_000: str")  # then the others from the top
    lines = text.splitlines()
    assert lines == sorted(lines, key=lambda line: hdrs.index(line))  # the file's order


def test_repo_name_is_the_folder_holding_the_file(sources, project):
    assert sources.repo_name(_main_query(project)) == project.name


def test_choose_gives_the_names_of_the_modules_used_near_the_cursor(sources, project):
    """`tasks` (from . import tasks) is the module: its names; `compute_invoice_total`
    (from .billing import ...) is one of billing's names, not a module: none for it."""
    snippets, names = sources.choose(_main_query(project), 4000)
    assert snippets == sources.select(_main_query(project), 4000)
    assert names == (("tasks", ("MAX_RETRIES", "Task", "schedule", "time")),)


def test_names_come_from_the_open_buffer_and_only_from_closed_modules(sources, project):
    path = project / "pkg/tasks.py"
    sources.document_opened(path.as_uri(), path, "pkg/tasks.py", "python",
                            TASKS + "\nUNSAVED = 1\n")
    assert dict(sources.choose(_main_query(project), 4000)[1])["tasks"][0] == "MAX_RETRIES"
    assert "UNSAVED" in dict(sources.choose(_main_query(project), 4000)[1])["tasks"]
    sources.document_opened(path.as_uri(), path, "pkg/tasks.py", "python",
                            TASKS + "\nfrom os import *\n")
    assert sources.choose(_main_query(project), 4000)[1] == ()  # anything may be in it now


def test_javascript_require_binds_the_module(make_sources, tmp_path):
    write_tree(tmp_path, {
        "lib/entry-index.js": "module.exports.insert = insert\nmodule.exports.find = find\n"
                              "function insert () {}\nfunction find () {}\n",
        "lib/put.js": "const index = require('./entry-index')\n"
                      "const { find } = require('./entry-index')\n\nindex.",
    })
    sources = make_sources()
    sources.set_folders([tmp_path])
    indexed(sources, tmp_path)
    text = (tmp_path / "lib/put.js").read_text()
    query = ContextQuery("k", tmp_path / "lib/put.js", "lib/put.js", "javascript", text,
                         len(text))
    # `index` is the module; `find`, destructured, is one of its names: none for it.
    assert sources.choose(query, 4000)[1] == (("index", ("find", "insert")),)
