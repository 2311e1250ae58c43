"""The workload: a fixed list of standard-library modules and seeded cursor positions.

Nobody here wrote these files, every Python install has them, and the list is fixed so
two runs on the same interpreter see the same text (the report records each file's
SHA-256, since a different Python version ships different text).

Positions are drawn with `random.Random(seed)`; only the first `MAX_PREFIX_CHARS`
characters of each file are used so that every prompt fits the 4096-token context
whole, for Helios and for the peer's plain prompt alike (no contender is forced to
truncate, so none pays for a truncation policy the others do not have).
"""

from __future__ import annotations

import hashlib
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Modules of the running interpreter's standard library (paths relative to its stdlib).
STDLIB_FILES: tuple[str, ...] = (
    "textwrap.py",
    "shlex.py",
    "fnmatch.py",
    "colorsys.py",
    "string.py",
    "queue.py",
    "sched.py",
    "graphlib.py",
    "json/decoder.py",
    "copy.py",
    "reprlib.py",
    "glob.py",
    "filecmp.py",
    "bisect.py",
    "netrc.py",
    "linecache.py",
)

MAX_PREFIX_CHARS = 10_000  # about 2,500 tokens: the cursor never sits further into a file
MIN_LINE = 12  # start below the imports, so a prompt has some context
_CLOSERS = set(")]}:;,'\"")


@dataclass(frozen=True)
class SourceFile:
    name: str  # path inside the stdlib, e.g. "json/decoder.py"
    text: str
    sha256: str

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def lines(self) -> list[str]:
        return self.text.split("\n")

    def offset(self, line: int, col: int = 0) -> int:
        return sum(len(ln) + 1 for ln in self.lines()[:line]) + col


@dataclass(frozen=True)
class Segment:
    """A stretch of the file typed again character by character.

    The document holds text[:start] + text[end:]; keystroke k makes it
    text[:start + k] + text[end:]. `end` is the end of a line, so the cursor is at the
    end of what is typed, with the rest of the file below it (as when writing code)."""

    file: SourceFile
    start: int
    end: int

    @property
    def typed(self) -> str:
        return self.file.text[self.start:self.end]

    @property
    def suffix(self) -> str:
        return self.file.text[self.end:]

    def prefix_at(self, k: int) -> str:
        return self.file.text[: self.start + k]


@dataclass(frozen=True)
class QualityCase:
    """Cursor inside a line; the hidden middle is what a perfect suggestion would be.

    prefix = text before the cursor; suffix = what stays after it on the line (closing
    brackets and punctuation the line ends with) and everything below."""

    file: SourceFile
    cursor: int
    middle_end: int
    line: int

    @property
    def prefix(self) -> str:
        return self.file.text[: self.cursor]

    @property
    def middle(self) -> str:
        return self.file.text[self.cursor: self.middle_end]

    @property
    def suffix(self) -> str:
        return self.file.text[self.middle_end:]


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def load_files(names: tuple[str, ...] = STDLIB_FILES) -> list[SourceFile]:
    root = stdlib_dir()
    files = []
    for name in names:
        text = (root / name).read_text(encoding="utf-8")
        files.append(SourceFile(name, text, hashlib.sha256(text.encode()).hexdigest()))
    return files


def _usable_lines(f: SourceFile, max_chars: int = MAX_PREFIX_CHARS) -> list[int]:
    """Lines with code on them, below MIN_LINE, within the first `max_chars` characters."""
    out = []
    offset = 0
    for i, line in enumerate(f.lines()):
        if offset + len(line) > max_chars:
            break
        if i >= MIN_LINE and len(line.strip()) >= 8 and sum(c.isalnum() for c in line) >= 4:
            out.append(i)
        offset += len(line) + 1
    return out


def replay_segments(files: list[SourceFile], n: int, chars: int, seed: int,
                    max_chars: int = MAX_PREFIX_CHARS) -> list[Segment]:
    """`n` segments of `chars` keystrokes, each in a different file, seeded.

    A segment ends at the end of a line with code on it and starts `chars` characters
    earlier, so it types within lines and often across a newline or two."""
    rng = random.Random(f"replay:{seed}")
    chosen = rng.sample(files, min(n, len(files)))
    segments = []
    for f in chosen:
        lines = [ln for ln in _usable_lines(f, max_chars) if f.offset(ln) > chars]
        line = rng.choice(lines)
        end = f.offset(line, len(f.lines()[line]))
        segments.append(Segment(f, end - chars, end))
    return segments


def quality_cases(files: list[SourceFile], n: int, seed: int,
                  max_chars: int = MAX_PREFIX_CHARS, n_files: int | None = None
                  ) -> list[QualityCase]:
    """`n` cursor positions spread over `n_files` of the files (a seeded choice), seeded,
    sorted by file and offset (so consecutive prompts of one file share their beginning:
    each file costs one cold prompt)."""
    rng = random.Random(f"quality:{seed}")
    if n_files is not None and n_files < len(files):
        chosen = set(f.name for f in rng.sample(files, n_files))
        files = [f for f in files if f.name in chosen]
    per_file = {f.name: [] for f in files}
    order = list(files)
    rng.shuffle(order)
    i = 0
    tries = 0
    while sum(len(v) for v in per_file.values()) < n and tries < n * 50:
        tries += 1
        f = order[i % len(order)]
        i += 1
        usable = _usable_lines(f, max_chars)
        if not usable:
            continue
        line = rng.choice(usable)
        text = f.lines()[line]
        indent = len(text) - len(text.lstrip())
        end = len(text.rstrip())
        while end > indent and text[end - 1] in _CLOSERS:
            end -= 1
        if end - indent < 4:
            continue
        col = rng.randint(indent + 1, end - 1)
        if not text[col:end].strip():
            continue
        case = QualityCase(f, f.offset(line, col), f.offset(line, end), line)
        if any(c.line == line for c in per_file[f.name]):
            continue
        per_file[f.name].append(case)
    cases = []
    for f in files:
        cases += sorted(per_file[f.name], key=lambda c: c.cursor)
    return cases


def start_column(line: str) -> int:
    """Where a type-ahead start goes in `line`: after its indentation and a third of it."""
    indent = len(line) - len(line.lstrip())
    return min(len(line) - 1, indent + max(2, (len(line) - indent) // 3))


def typeahead_starts(files: list[SourceFile], n: int, seed: int,
                     max_chars: int = MAX_PREFIX_CHARS) -> list[Segment]:
    """Cursor positions at the end of a line's first word or two, where a suggestion
    for the rest of the line is likely; used for the type-ahead measurement."""
    rng = random.Random(f"typeahead:{seed}")
    out = []
    for f in rng.sample(files, min(n, len(files))):
        line = rng.choice(_usable_lines(f, max_chars))
        text = f.lines()[line]
        start = f.offset(line, start_column(text))
        out.append(Segment(f, start, f.offset(line, len(text))))
    return out


@dataclass(frozen=True)
class Place:
    """Where the cursor lands after a jump: `kind` is "start" (the first place), "within"
    (elsewhere in the same file), "file-new" (a file not visited yet) or "file-return"
    (back to a file visited before, a line below where the user left it, as an editor
    keeps each file's cursor). The line's code is typed anew from its indentation on."""

    kind: str
    segment: Segment
    line: int


MIN_JUMP_LINES = 20  # a jump within a file moves at least this far when the file allows


def _place(kind: str, f: SourceFile, line: int) -> Place:
    text = f.lines()[line]
    indent = len(text) - len(text.lstrip())
    return Place(kind, Segment(f, f.offset(line, indent), f.offset(line, len(text))), line)


def jump_plan(files: list[SourceFile], n: int, n_files: int, seed: int,
              max_chars: int = MAX_PREFIX_CHARS) -> list[Place]:
    """A first place, then `n` jumps among `n_files` of the files (a seeded choice),
    alternately within the current file and to another one."""
    rng = random.Random(f"jumps:{seed}")
    chosen = rng.sample(files, min(max(1, n_files), len(files)))
    usable = {f.name: _usable_lines(f, max_chars) for f in chosen}
    current = chosen[0]
    plan = [_place("start", current, rng.choice(usable[current.name]))]
    left_at = {current.name: plan[0].line}
    for i in range(n):
        others = [f for f in chosen if f is not current]
        if i % 2 == 0 or not others:
            lines = usable[current.name]
            here = left_at[current.name]
            far = [ln for ln in lines if abs(ln - here) >= MIN_JUMP_LINES]
            line = rng.choice(far or [ln for ln in lines if ln != here] or lines)
            kind = "within"
        else:
            current = rng.choice(others)
            lines = usable[current.name]
            if current.name in left_at:
                below = [ln for ln in lines if ln > left_at[current.name]]
                line, kind = (below[0] if below else lines[-1]), "file-return"
            else:
                line, kind = rng.choice(lines), "file-new"
        plan.append(_place(kind, current, line))
        left_at[current.name] = line
    return plan
