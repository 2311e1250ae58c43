"""The workspace index: files of the workspace folders, chunked and indexed by token.

One background thread walks the folders, reads and parses the files and keeps the index
current (watcher notifications, and a stat sweep every `sweep_seconds`). It yields the
GIL between files and while parsing, so an asyncio loop in the same process keeps
answering. The index holds no file text: a chunk chosen for a prompt is read back from
disk, and only if the file is unchanged since it was indexed (else it is re-indexed).

File contents never reach the log.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from helios_lsp import heap
from helios_lsp.engine.context import syntax
from helios_lsp.engine.context.chunk_index import ChunkIndex
from helios_lsp.engine.context.filetypes import grammar_for, language_of
from helios_lsp.engine.context.ignore import IgnoreRules, rules_for, skipped_dir_reason
from helios_lsp.engine.context.memory import release_free_memory
from helios_lsp.engine.context.resolve import read_go_module
from helios_lsp.engine.context.secret_names import is_secret
from helios_lsp.engine.context.tokens import token_ids
from helios_lsp.engine.context.types import ContextLimits

log = logging.getLogger(__name__)

_BINARY_PROBE = 8 << 10  # a NUL byte in the first 8 KiB makes a file binary
_TEXT_CACHE_BYTES = 4 << 20  # file texts read back for chunks, kept for the next request
# Files indexed between two hand-backs of freed memory, and between two freezes of what
# survived (heap.freeze_survivors: no full collection rescans it)
_TRIM_EVERY = 100
_OUTLINE_CACHE = 32  # outlines of large files (parsed on demand), kept
_OUTLINE_PIECE_BYTES = 128 << 10  # larger files are parsed in pieces for their outline


@dataclass(slots=True)
class IndexedFile:
    path: str  # absolute, normalised
    folder: str  # the workspace folder holding it
    rel: str  # relative to the folder, posix
    language: str
    mtime_ns: int
    size: int
    file_id: int
    chunks: range = range(0)
    # Its outline at three levels of detail (syntax.outline_levels), zlib-compressed, when
    # the file was parsed whole at indexing; larger files are parsed again on demand.
    outline: bytes | None = None


@dataclass
class _Folder:
    root: str
    real: str  # its resolved path: symlinked files must point inside it
    generation: int
    skipped: dict[str, int] = field(default_factory=dict)  # by rule, from the last walk
    walked: bool = False


class WorkspaceIndex:
    def __init__(self, limits: ContextLimits) -> None:
        self.limits = limits
        self.lock = threading.RLock()  # guards the index; select() holds it while scoring
        self._cond = threading.Condition(self.lock)
        self._files: dict[str, IndexedFile] = {}
        self._by_id: dict[int, IndexedFile] = {}
        self._next_id = 0
        self.chunks = ChunkIndex()
        self._folders: dict[str, _Folder] = {}
        self._generation = 0
        self._enabled = True
        self._tasks: deque[tuple] = deque()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._indexed_bytes = 0
        self._bytes_read = 0
        self._last_seconds: float | None = None
        self._last_sweep = time.monotonic()
        self._sweeps = 0
        self._texts: OrderedDict[tuple[str, int, int], tuple[bytes, np.ndarray]] = OrderedDict()
        self._texts_bytes = 0
        self._outlines: OrderedDict[tuple[str, int, int], tuple[str, ...]] = OrderedDict()
        self._go_modules: dict[str, tuple[int, str | None]] = {}
        self._since_trim = 0  # files indexed since freed memory was last handed back

    # --- control (called from the asyncio loop: cheap, never blocks on I/O) -------------

    def set_folders(self, folders: Sequence[os.PathLike[str] | str]) -> None:
        roots = list(dict.fromkeys(os.path.normpath(os.path.abspath(f)) for f in folders))
        with self.lock:
            for root in [r for r in self._folders if r not in roots]:
                del self._folders[root]
                self._forget(f for f in self._files.values() if f.folder == root)
            for root in roots:
                if root not in self._folders:
                    self._generation += 1
                    real = os.path.realpath(root)
                    self._folders[root] = _Folder(root, real, self._generation)
                    if self._enabled:
                        self._submit(("walk", root, True))

    @property
    def folders(self) -> list[str]:
        with self.lock:
            return list(self._folders)

    @property
    def enabled(self) -> bool:
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        with self.lock:
            if enabled == self._enabled:
                return
            self._enabled = enabled
            self._tasks.clear()
            if not enabled:
                self._forget(list(self._files.values()))
                for folder in self._folders.values():
                    folder.walked = False
                    folder.skipped = {}
            else:
                for root in self._folders:
                    self._submit(("walk", root, True))

    def files_changed(self, paths: Iterable[os.PathLike[str] | str]) -> None:
        norm = [os.path.normpath(os.path.abspath(p)) for p in paths]
        with self.lock:
            if self._enabled and norm:
                self._submit(("paths", norm))

    def files_deleted(self, paths: Iterable[os.PathLike[str] | str]) -> None:
        norm = [os.path.normpath(os.path.abspath(p)) for p in paths]
        with self.lock:
            for path in norm:
                entry = self._files.get(path)
                if entry is not None:
                    self._forget((entry,))
                else:  # a directory: everything under it
                    prefix = path + os.sep
                    self._forget([f for f in self._files.values() if f.path.startswith(prefix)])

    def close(self) -> None:
        with self.lock:
            self._closed = True
            self._tasks.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until no indexing work is queued or running (sweeps aside)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self._tasks or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def sweep_now(self) -> None:
        """Queue a stat sweep of every folder (normally run every `sweep_seconds`)."""
        with self.lock:
            if self._enabled:
                for root in self._folders:
                    self._submit(("walk", root, False))

    # --- queries (any thread) ----------------------------------------------------------

    def paths(self) -> list[str]:
        with self.lock:
            return sorted(self._files)

    def lookup(self, path: str) -> IndexedFile | None:
        with self.lock:
            return self._files.get(path)

    def entry(self, file_id: int) -> IndexedFile | None:
        with self.lock:
            return self._by_id.get(file_id)

    def folder_of(self, path: str) -> str | None:
        """The workspace folder holding a path (the innermost one), or None."""
        with self.lock:
            best = None
            for root in self._folders:
                if (path == root or path.startswith(root + os.sep)) and (
                    best is None or len(root) > len(best)
                ):
                    best = root
            return best

    def files_in_dir(self, directory: str) -> list[str]:
        prefix = directory + os.sep
        with self.lock:
            return [
                p for p in self._files if p.startswith(prefix) and os.sep not in p[len(prefix) :]
            ]

    def go_module(self, gomod: str) -> str | None:
        try:
            mtime = os.stat(gomod).st_mtime_ns
        except OSError:
            return None
        cached = self._go_modules.get(gomod)
        if cached is None or cached[0] != mtime:
            cached = (mtime, read_go_module(gomod))
            self._go_modules[gomod] = cached
        return cached[1]

    def _read_back(self, entry: IndexedFile) -> tuple[bytes, np.ndarray] | None:
        """A file's bytes and line starts as indexed, or None when it changed on disk
        since (then it is queued for re-indexing) or cannot be read."""
        key = (entry.path, entry.mtime_ns, entry.size)
        with self.lock:
            cached = self._texts.get(key)
            if cached is not None:
                self._texts.move_to_end(key)
        try:
            st = os.stat(entry.path)
        except OSError:
            self.files_deleted([entry.path])
            return None
        if (st.st_mtime_ns, st.st_size) != (entry.mtime_ns, entry.size):
            self.files_changed([entry.path])
            return None
        if cached is not None:
            return cached
        data = _read_regular(entry.path, self.limits.max_file_bytes)
        if data is None or len(data) != entry.size:
            self.files_changed([entry.path])
            return None
        newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
        with self.lock:
            if key not in self._texts:
                self._texts[key] = (data, starts)
                self._texts_bytes += len(data) + starts.nbytes
            while self._texts_bytes > _TEXT_CACHE_BYTES and len(self._texts) > 1:
                _, (old, old_starts) = self._texts.popitem(last=False)
                self._texts_bytes -= len(old) + old_starts.nbytes
        return data, starts

    def read_span(self, entry: IndexedFile, first: int, last: int) -> str | None:
        """Lines first..last (0-based, inclusive) of a file as indexed, each ending in a
        newline; None when the file changed since it was indexed."""
        found = self._read_back(entry)
        if found is None:
            return None
        data, starts = found
        if first >= len(starts):
            return ""
        end = int(starts[last + 1]) if last + 1 < len(starts) else len(data)
        text = data[int(starts[first]) : end].decode("utf-8", "replace")
        return "".join(syntax.split_lines(text))

    def read_text(self, entry: IndexedFile) -> str | None:
        found = self._read_back(entry)
        return found[0].decode("utf-8", "replace") if found is not None else None

    def file_outline(self, entry: IndexedFile, max_chars: int,
                     near: Collection[str] = ()) -> str | None:
        """A workspace file's outline cut to max_chars: kept from indexing when the file
        was parsed whole then, else parsed now (and cached while the file is unchanged).
        None when the file changed since it was indexed."""
        if entry.outline is not None:
            levels = zlib.decompress(entry.outline).decode().split("\0")
            return syntax.fit_outline(levels, max_chars, near)
        key = (entry.path, entry.mtime_ns, entry.size)
        with self.lock:
            cached = self._outlines.get(key)
            if cached is not None:
                self._outlines.move_to_end(key)
        if cached is None:
            text = self.read_text(entry)
            grammar = grammar_for(entry.language, entry.path)
            if text is None or grammar is None or grammar not in syntax.RULES:
                return None
            cached = syntax.outline_of(text, grammar, _OUTLINE_PIECE_BYTES)
            with self.lock:
                self._outlines[key] = cached
                while len(self._outlines) > _OUTLINE_CACHE:
                    self._outlines.popitem(last=False)
        return syntax.fit_outline(cached, max_chars, near)

    def top_chunks(
        self, tokens: Collection[int], files: int, exclude_paths: Collection[str]
    ) -> list[tuple[float, IndexedFile, int, int]]:
        """The best chunk of each of the `files` best-matching files: (score, file, first
        line, last line), best first."""
        with self.lock:
            exclude = {self._files[p].file_id for p in exclude_paths if p in self._files}
            out = []
            for score, cid in self.chunks.top(tokens, files, exclude):
                file_id, first, last = self.chunks.chunk(cid)
                entry = self._by_id.get(file_id)
                if entry is not None:
                    out.append((score, entry, first, last))
            return out

    def token_stats(self, tokens: Collection[int]) -> tuple[int, float, int, dict[int, int]]:
        """What BM25 needs to score other chunks like the index's own: the number of
        chunks, their average length, the document frequency above which a token is
        ignored, and each token's document frequency."""
        with self.lock:
            index = self.chunks
            return (
                len(index),
                index.avg_length,
                index.max_df(),
                index.dfs(tokens),
            )

    def state(self) -> str:
        with self.lock:
            if not self._enabled or not self._folders:
                return "idle"
            if self._tasks or self._busy or not all(f.walked for f in self._folders.values()):
                return "indexing"
            return "ready"

    def stats(self) -> dict[str, object]:
        with self.lock:
            skipped: dict[str, int] = {}
            for folder in self._folders.values():
                for rule, count in folder.skipped.items():
                    skipped[rule] = skipped.get(rule, 0) + count
            cap = skipped.pop("cap", 0)
            return {
                "state": self.state(),
                "enabled": self._enabled,
                "folders": len(self._folders),
                "files": len(self._files),
                "chunks": len(self.chunks),
                "bytes": self._indexed_bytes,
                "bytes_read": self._bytes_read,
                "seconds": self._last_seconds,
                "sweeps": self._sweeps,
                "skipped_cap": cap,
                "skipped_rule": sum(v for k, v in skipped.items() if not k.startswith("dir_")),
                "skipped": dict(sorted(skipped.items())),
            }

    # --- the indexing thread -----------------------------------------------------------

    def _submit(self, task: tuple) -> None:
        # Called with the lock held.
        if self._closed:
            return
        self._tasks.append(task)
        self._cond.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="helios-context-index")
            self._thread.daemon = True
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self._closed and not self._tasks:
                    wait = self.limits.sweep_seconds - (time.monotonic() - self._last_sweep)
                    if wait <= 0 and self._enabled and self._folders:
                        self._sweeps += 1
                        for root in self._folders:
                            self._tasks.append(("walk", root, False))
                        break
                    idle = not (self._enabled and self._folders)
                    self._cond.wait(None if idle else max(wait, 0.05))
                if self._closed:
                    return
                task = self._tasks.popleft()
                self._busy = True
            try:
                if task[0] == "walk":
                    self._walk_folder(task[1], full=task[2])
                elif task[0] == "paths":
                    for path in task[1]:
                        self._refresh_path(path)
                self._freeze(final=True)
                release_free_memory()
            except Exception as e:  # the thread lives on; the log gets no file content
                log.warning("context index: %s failed (%s)", task[0], type(e).__name__)
            finally:
                with self.lock:
                    self._busy = False
                    if task[0] == "walk":
                        self._last_sweep = time.monotonic()
                    self._cond.notify_all()

    def _current(self, root: str, generation: int) -> bool:
        folder = self._folders.get(root)
        return (
            not self._closed
            and self._enabled
            and folder is not None
            and folder.generation == generation
        )

    def _walk_folder(self, root: str, full: bool) -> None:
        with self.lock:
            folder = self._folders.get(root)
            if folder is None:
                return
            generation = folder.generation
        started = time.monotonic()
        counts: dict[str, int] = {}
        seen: set[str] = set()
        if not self._walk(folder, generation, root, "", None, counts, seen):
            return
        with self.lock:
            if not self._current(root, generation):
                return
            gone = [f for f in self._files.values() if f.folder == root and f.path not in seen]
            self._forget(gone)
            folder.skipped = counts
            folder.walked = True
            if full:
                self._last_seconds = round(time.monotonic() - started, 3)

    def _walk(
        self,
        folder: _Folder,
        generation: int,
        start: str,
        start_rel: str,
        start_rules: IgnoreRules | None,
        counts: dict[str, int],
        seen: set[str],
    ) -> bool:
        """Index everything under `start`; False when the walk was abandoned."""
        root = folder.root
        stack: list[tuple[str, str, IgnoreRules | None]] = [(start, start_rel, start_rules)]
        while stack:
            path, rel, parent_rules = stack.pop()
            if not self._current(root, generation):
                return False
            if parent_rules is None:
                rules = IgnoreRules.for_folder(root) if not rel else rules_for(root, rel)
                if rules is None:
                    continue
            else:
                rules = parent_rules.entering(path, rel)
            try:
                with os.scandir(path) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for entry in entries:
                if self._closed:
                    return False
                syntax.maybe_yield()
                name = entry.name
                erel = f"{rel}/{name}" if rel else name
                try:
                    is_link = entry.is_symlink()
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_link and entry.is_dir():
                    _count(counts, "dir_symlink")  # never followed
                    continue
                if is_dir:
                    reason = skipped_dir_reason(entry.path, name)
                    if reason is not None:
                        _count(counts, f"dir_{reason}")
                    elif rules.ignored(erel, is_dir=True):
                        _count(counts, "dir_gitignore")
                    else:
                        subdirs.append((entry.path, erel))
                    continue
                language = language_of(name)
                if language is None:
                    continue
                if is_secret(name, self.limits.secret_globs):
                    _count(counts, "secret")
                    continue
                if rules.ignored(erel):
                    _count(counts, "gitignore")
                    continue
                if is_link and not self._link_allowed(entry.path, folder):
                    _count(counts, "symlink")
                    continue
                seen.add(entry.path)
                self._index_file(entry.path, erel, folder, generation, language, counts)
            for sub in reversed(subdirs):
                stack.append((sub[0], sub[1], rules))
        return True

    def _link_allowed(self, path: str, folder: _Folder) -> bool:
        """A symlinked file is read only when it resolves to a file inside its folder
        whose own name is not a secret's."""
        real = os.path.realpath(path)
        inside = real.startswith(folder.real + os.sep)
        return inside and not is_secret(os.path.basename(real), self.limits.secret_globs)

    def _index_file(
        self,
        path: str,
        rel: str,
        folder: _Folder,
        generation: int,
        language: str,
        counts: dict[str, int],
    ) -> None:
        limits = self.limits
        try:
            st = os.stat(path)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode):
            _count(counts, "not_a_file")  # FIFOs, devices: never opened
            return
        with self.lock:
            existing = self._files.get(path)
            if existing is not None and (existing.mtime_ns, existing.size) == (
                st.st_mtime_ns,
                st.st_size,
            ):
                return
        if st.st_size > limits.max_file_bytes:
            _count(counts, "huge")
            self._forget_path(path)
            return
        with self.lock:
            others = len(self._files) - (existing is not None)
            held = self._indexed_bytes - (existing.size if existing is not None else 0)
            if others >= limits.max_files or held + st.st_size > limits.max_bytes:
                _count(counts, "cap")
                return
        data = _read_regular(path, limits.max_file_bytes)
        if data is None:
            return
        with self.lock:
            self._bytes_read += len(data)
        if b"\0" in data[:_BINARY_PROBE]:
            _count(counts, "binary")
            self._forget_path(path)
            return
        chunks, outline = _chunks(data, language, path)
        syntax.maybe_yield()
        with self.lock:
            if not self._current(folder.root, generation):
                return
            existing = self._files.pop(path, None)
            if existing is not None:
                self._drop(existing)
            entry = IndexedFile(
                path, folder.root, rel, language, st.st_mtime_ns, len(data), self._next_id
            )
            entry.outline = outline
            self._next_id += 1
            entry.chunks = self.chunks.add(entry.file_id, chunks)
            self._files[path] = entry
            self._by_id[entry.file_id] = entry
            self._indexed_bytes += entry.size
            self._since_trim += 1
        self._freeze(final=False)
        if self._since_trim >= _TRIM_EVERY:
            self._since_trim = 0
            heap.freeze_survivors()
            release_free_memory()

    def _refresh_path(self, path: str) -> None:
        """Bring one changed path up to date (a file, a new directory, a .gitignore)."""
        root = self.folder_of(path)
        if root is None:
            return
        with self.lock:
            folder = self._folders.get(root)
            if folder is None:
                return
            generation = folder.generation
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        name = os.path.basename(path)
        if name == ".gitignore" or rel == ".git/info/exclude":
            self._walk_folder(root, full=False)  # the rules changed: reconcile everything
            return
        parent_rel = os.path.dirname(rel)
        rules = IgnoreRules.for_folder(root) if not parent_rel else rules_for(root, parent_rel)
        if os.path.isdir(path) and not os.path.islink(path):
            if rules is None or skipped_dir_reason(path, name) or rules.ignored(rel, True):
                return
            self._walk(folder, generation, path, rel, None, {}, set())
            return
        language = language_of(name)
        excluded = (
            rules is None
            or language is None
            or is_secret(name, self.limits.secret_globs)
            or rules.ignored(rel)
            or (os.path.islink(path) and not self._link_allowed(path, folder))
            or not os.path.isfile(path)
        )
        if excluded or language is None:
            self._forget_path(path)
            return
        self._index_file(path, rel, folder, generation, language, {})

    def _freeze(self, final: bool) -> None:
        """Merge recent postings into the index's compact arrays (see ChunkIndex.freeze),
        holding the lock only for the steps that need it."""
        with self.lock:
            if not self.chunks.needs_freeze(final):
                return
            steps = self.chunks.freeze()
            need = next(steps, None)
        while need is not None:
            if need == "locked":
                with self.lock:
                    need = next(steps, None)
            else:
                need = next(steps, None)
                syntax.maybe_yield()
        release_free_memory()

    # --- bookkeeping (lock held) -------------------------------------------------------

    def _forget(self, entries: Iterable[IndexedFile]) -> None:
        for entry in list(entries):
            if self._files.get(entry.path) is entry:
                del self._files[entry.path]
                self._drop(entry)

    def _drop(self, entry: IndexedFile) -> None:
        self._by_id.pop(entry.file_id, None)
        self.chunks.remove(entry.chunks)
        self._indexed_bytes -= entry.size

    def _forget_path(self, path: str) -> None:
        with self.lock:
            entry = self._files.get(path)
            if entry is not None:
                self._forget((entry,))


def _count(counts: dict[str, int], rule: str) -> None:
    counts[rule] = counts.get(rule, 0) + 1


def _read_regular(path: str, limit: int) -> bytes | None:
    """At most limit + 1 bytes of a regular file; None for anything else. Opened without
    blocking, so a FIFO put in place of a file cannot hang the thread."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _chunks(
    data: bytes, language: str, path: str
) -> tuple[list[tuple[int, int, set[int]]], bytes | None]:
    """A file's retrieval chunks with their tokens, (first line, last line, token ids)
    each, and its outline levels compressed (None unless it was parsed whole)."""
    text = data.decode("utf-8", "replace")
    lines = syntax.split_lines(text)
    grammar = grammar_for(language, path)
    ranges: Sequence[tuple[int, int]]
    outline = None
    try:
        if grammar is None:
            raise ValueError("no grammar")
        ranges, defs = syntax.index_chunks(data, grammar, lines)
        if defs is not None:
            outline = zlib.compress("\0".join(syntax.outline_levels(defs)).encode(), 6)
    except Exception:  # an unparsable file is still chunked, by lines
        ranges = syntax.chunk_ranges((), len(lines), lines)
    out = []
    for first, last in ranges:
        tokens = token_ids("".join(lines[first : last + 1]))
        if tokens:
            out.append((first, last, tokens))
    return out, outline
