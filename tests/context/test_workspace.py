"""The workspace index on real trees: what is read, what is never read, caps, refresh."""

from __future__ import annotations

import builtins
import os
import shutil
import time
from pathlib import Path

import pytest

from helios_lsp.engine.context import ContextQuery, is_secret
from tests.context.helpers import indexed, write_tree


def _query(path: Path, text: str, root: Path | None = None) -> ContextQuery:
    name = path.relative_to(root).as_posix() if root else path.name
    return ContextQuery(f"file://{path}", path, name, "python", text, len(text))


def test_rules_decide_what_is_indexed(tmp_path, make_sources):
    write_tree(
        tmp_path,
        {
            "a.py": "def a(): pass\n",
            ".gitignore": "ignored.py\nlogs/\n*.gen.js\n!keep.gen.js\n",
            "ignored.py": "x = 1\n",
            "logs/x.py": "x = 1\n",
            "z.gen.js": "var z;\n",
            "keep.gen.js": "var k;\n",
            "sub/.gitignore": "local.py\n",
            "sub/local.py": "x = 1\n",
            "sub/ok.py": "x = 1\n",
            "other/local.py": "x = 1\n",  # the nested rule is sub/'s only
            ".git/info/exclude": "excluded.py\n",
            ".git/config": "[core]\n",
            "excluded.py": "x = 1\n",
            "node_modules/m/index.js": "module.exports = 1;\n",
            ".venv/lib/x.py": "x = 1\n",
            "myenv/pyvenv.cfg": "home = /usr\n",
            "myenv/lib/y.py": "y = 1\n",
            "build/out.js": "var o;\n",
            "dist/d.js": "var d;\n",
            "target/t.rs": "fn t() {}\n",
            "__pycache__/c.py": "c = 1\n",
            ".hidden/h.py": "h = 1\n",
            "binary.py": b"x = 1\n\x00\x01\x02",
            "huge.py": "x = 1\n" * 3000,
            "README.md": "# readme\n",
            "web/page.html": "<p>x</p>\n",
            "web/style.css": "p { color: red; }\n",
            "web/data.json": '{"a": 1}\n',
            "web/package-lock.json": "{}\n",
            "web/app.min.js": "var a;\n",
        },
    )
    sources = make_sources(max_file_bytes=10_000)
    sources.set_folders([tmp_path])
    assert indexed(sources, tmp_path) == [
        "a.py",
        "keep.gen.js",
        "other/local.py",
        "sub/ok.py",
        "web/data.json",
        "web/page.html",
        "web/style.css",
    ]
    stats = sources.stats()
    assert stats["state"] == "ready" and stats["files"] == 7
    # ignored.py, z.gen.js, sub/local.py, excluded.py (.git/info/exclude)
    assert stats["skipped"]["gitignore"] == 4
    assert stats["skipped"]["binary"] == 1 and stats["skipped"]["huge"] == 1
    assert stats["skipped_rule"] >= 5 and stats["skipped_cap"] == 0
    assert stats["seconds"] is not None and stats["bytes"] > 0


def test_secrets_are_never_opened_nor_selected(tmp_path, make_sources, monkeypatch):
    secret_text = "def shared_secret_token(api_key, secret_value):\n    return api_key\n"
    write_tree(
        tmp_path,
        {
            ".env": "KEY=1\n",
            "secrets.json": '{"api_key": "x"}\n',
            "credentials.json": '{"api_key": "x"}\n',
            "config.prod.json": '{"api_key": "x"}\n',  # the extra glob below
            "deploy/id_rsa": "-----BEGIN KEY-----\n",
            "server.pem": "-----BEGIN CERTIFICATE-----\n",
            "app.py": "def use(api_key):\n    return api_key\n",
        },
    )
    # A secret that would hang whoever opened it to read (a FIFO with no writer).
    os.mkfifo(tmp_path / ".env.js")
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    sources = make_sources(secret_globs=("config.*.json",))
    sources.set_folders([tmp_path])
    assert indexed(sources, tmp_path) == ["app.py"]
    # An open document that is a secret is not even kept.
    sources.document_opened("k-env", tmp_path / ".env", ".env", "dotenv", secret_text)
    sources.document_opened("k-pem", None, "certs/site.pem", "text", secret_text)
    assert sources.stats()["documents"] == 0
    current = tmp_path / "main.py"
    snippets = sources.select(_query(current, secret_text, tmp_path), 10_000)
    assert snippets and all(not is_secret(s.path, ("config.*.json",)) for s in snippets)
    monkeypatch.undo()
    secret_names = {".env", ".env.js", "secrets.json", "credentials.json", "config.prod.json"}
    assert not [p for p in opened if os.path.basename(p) in secret_names | {"id_rsa", "server.pem"}]
    assert sources.stats()["skipped"]["secret"] == 4  # the ones with a language's extension


def test_is_secret_names():
    for name in (
        ".env",
        ".env.local",
        "a/b/.env.production",
        "key.pem",
        "x.KEY",
        "id_rsa",
        "id_ed25519.pub",
        "cert.p12",
        "c.pfx",
        ".npmrc",
        ".netrc",
        ".pypirc",
    ):
        assert is_secret(name), name
    for name in ("env.py", "keys.py", "id_map.py", "environment.ts", "pem.go", "app.py"):
        assert not is_secret(name), name
    assert is_secret("conf/local.yaml", ("conf/*.yaml",))
    assert is_secret("C:\\work\\.env")


def test_symlinks_never_lead_out_of_the_folder(tmp_path, make_sources):
    outside = tmp_path / "outside"
    folder = tmp_path / "folder"
    write_tree(outside, {"stolen.py": "x = 1\n", "pkg/mod.py": "y = 1\n"})
    write_tree(folder, {"real.py": "z = 1\n", "sub/inner.py": "w = 1\n"})
    (folder / "link_out.py").symlink_to(outside / "stolen.py")
    (folder / "link_in.py").symlink_to(folder / "real.py")
    (folder / "dir_out").symlink_to(outside / "pkg")
    (folder / "dir_in").symlink_to(folder / "sub")  # symlinked directories: never followed
    (folder / "env_link.py").symlink_to(folder / ".env")  # a link to a secret
    (folder / ".env").write_text("KEY=1\n")
    sources = make_sources()
    sources.set_folders([folder])
    assert indexed(sources, folder) == ["link_in.py", "real.py", "sub/inner.py"]
    skipped = sources.stats()["skipped"]
    assert skipped["symlink"] == 2 and skipped["dir_symlink"] == 2


def test_caps_stop_indexing_and_say_so(tmp_path, make_sources):
    write_tree(tmp_path, {f"m{i}.py": f"value_{i} = {i}\n" * 5 for i in range(8)})
    sources = make_sources(max_files=3)
    sources.set_folders([tmp_path])
    assert indexed(sources, tmp_path) == ["m0.py", "m1.py", "m2.py"]  # in walk order
    stats = sources.stats()
    assert stats["files"] == 3 and stats["skipped_cap"] == 5

    size = (tmp_path / "m0.py").stat().st_size
    by_bytes = make_sources(max_bytes=size * 2 + 1)
    by_bytes.set_folders([tmp_path])
    assert len(indexed(by_bytes, tmp_path)) == 2
    assert by_bytes.stats()["skipped_cap"] == 6 and by_bytes.stats()["bytes"] == size * 2


def test_folders_come_and_go(tmp_path, make_sources):
    a, b = tmp_path / "a", tmp_path / "b"
    write_tree(a, {"x.py": "x = 1\n"})
    write_tree(b, {"y.py": "y = 1\n"})
    sources = make_sources()
    sources.set_folders([a])
    assert indexed(sources, tmp_path) == ["a/x.py"]
    sources.set_folders([a, b])
    assert indexed(sources, tmp_path) == ["a/x.py", "b/y.py"]
    sources.set_folders([b])
    assert sorted(sources.indexed_paths()) == [str(b / "y.py")]  # forgotten at once
    assert sources.stats()["folders"] == 1
    sources.set_folders([])
    assert sources.indexed_paths() == [] and sources.stats()["state"] == "idle"


def test_changed_and_deleted_files(tmp_path, make_sources):
    write_tree(tmp_path, {"keep.py": "def keep(): pass\n"})
    sources = make_sources()
    sources.set_folders([tmp_path])
    assert indexed(sources, tmp_path) == ["keep.py"]
    write_tree(tmp_path, {"new.py": "def fresh_function_name(argument): pass\n"})
    os.makedirs(tmp_path / "pkg")
    write_tree(tmp_path, {"pkg/inner.py": "y = 2\n"})
    sources.files_changed([tmp_path / "new.py", tmp_path / "pkg"])
    assert indexed(sources, tmp_path) == ["keep.py", "new.py", "pkg/inner.py"]
    (tmp_path / "new.py").unlink()
    sources.files_deleted([tmp_path / "new.py"])
    assert indexed(sources, tmp_path) == ["keep.py", "pkg/inner.py"]
    shutil.rmtree(tmp_path / "pkg")
    sources.files_deleted([tmp_path / "pkg"])  # a directory: everything under it
    assert indexed(sources, tmp_path) == ["keep.py"]
    # A .gitignore that changes re-checks the folder.
    write_tree(tmp_path, {".gitignore": "keep.py\n"})
    sources.files_changed([tmp_path / ".gitignore"])
    assert indexed(sources, tmp_path) == []


def _chunk_texts(sources, root: Path, query_text: str) -> list[str]:
    current = root / "current.py"
    return [s.text for s in sources.select(_query(current, query_text, root), 5000)]


def test_a_stale_chunk_is_never_shown_and_its_file_reindexed(tmp_path, make_sources):
    old = "def compute_ledger_balance(ledger, account):\n    return ledger[account]\n"
    new = "def compute_ledger_balance(ledger, account, day):\n    return ledger[day][account]\n"
    write_tree(tmp_path, {"ledger.py": old})
    sources = make_sources()
    sources.set_folders([tmp_path])
    indexed(sources, tmp_path)
    query = "balance = compute_ledger_balance(ledger, account)\n"
    assert _chunk_texts(sources, tmp_path, query) == [old]
    (tmp_path / "ledger.py").write_text(new)  # no watcher told us
    assert _chunk_texts(sources, tmp_path, query) == []  # changed on disk: not shown stale
    assert sources.wait_ready(30)
    assert _chunk_texts(sources, tmp_path, query) == [new]


def test_the_stat_sweep_notices_what_no_watcher_reported(tmp_path, make_sources):
    write_tree(tmp_path, {"a.py": "a = 1\n", "gone.py": "g = 1\n"})
    sources = make_sources(sweep_seconds=0.2)
    sources.set_folders([tmp_path])
    assert indexed(sources, tmp_path) == ["a.py", "gone.py"]
    write_tree(tmp_path, {"b.py": "b = 2\n", "a.py": "a = 1000\n"})
    (tmp_path / "gone.py").unlink()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if indexed(sources, tmp_path) == ["a.py", "b.py"] and sources.stats()["bytes"] == 15:
            break
        time.sleep(0.05)
    assert indexed(sources, tmp_path) == ["a.py", "b.py"]
    assert sources.stats()["sweeps"] >= 1 and sources.stats()["bytes"] == 15


def test_workspace_disabled_means_no_walk(tmp_path, make_sources):
    write_tree(tmp_path, {"a.py": "a = 1\n"})
    sources = make_sources()
    sources.workspace_enabled = False
    sources.set_folders([tmp_path])
    time.sleep(0.2)
    assert sources.indexed_paths() == [] and sources.stats()["state"] == "idle"
    sources.workspace_enabled = True
    assert indexed(sources, tmp_path) == ["a.py"]
    sources.workspace_enabled = False
    assert sources.indexed_paths() == []


@pytest.mark.parametrize("name", ["m.py", "m.go"])
def test_a_fifo_with_a_source_name_is_not_read(tmp_path, make_sources, name):
    os.mkfifo(tmp_path / name)
    write_tree(tmp_path, {"ok.py": "x = 1\n"})
    sources = make_sources()
    sources.set_folders([tmp_path])
    assert indexed(sources, tmp_path) == ["ok.py"]
    assert sources.stats()["skipped"]["not_a_file"] == 1
