"""Which directories and files of a workspace folder are left alone, and why.

`.gitignore` files (nested ones too) and `.git/info/exclude` are honoured with git's
semantics as the `pathspec` package implements them; a deeper file's patterns override
an outer one's. Virtualenvs, dependencies, build output and hidden directories are
never entered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import pathspec

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "bower_components",
        "jspm_packages",
        ".venv",
        "venv",
        "env",
        "virtualenv",
        "__pycache__",
        "build",
        "dist",
        "target",
        "out",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".next",
        ".nuxt",
        ".svelte-kit",
        ".gradle",
        ".idea",
        ".vscode",
        "coverage",
        "htmlcov",
        ".eggs",
        "site-packages",
        "vendor",
        "third_party",
        "bazel-out",
        "cmake-build-debug",
        "cmake-build-release",
    }
)

_MAX_IGNORE_FILE = 1 << 20  # a larger .gitignore is not read


def skipped_dir_reason(path: str, name: str) -> str | None:
    """Why a directory is not entered ("skipped", "hidden", "virtualenv"), or None."""
    if name in SKIPPED_DIRS or name.endswith(".egg-info"):
        return "skipped"
    if name.startswith("."):
        return "hidden"
    if os.path.isfile(os.path.join(path, "pyvenv.cfg")):
        return "virtualenv"
    return None


@dataclass(frozen=True, slots=True)
class _Spec:
    base: str  # the directory the patterns are relative to ("" for the folder), posix
    spec: pathspec.PathSpec


class IgnoreRules:
    """The gitignore patterns that apply inside one directory of a folder."""

    __slots__ = ("_specs",)

    def __init__(self, specs: Sequence[_Spec] = ()) -> None:
        self._specs = tuple(specs)

    @classmethod
    def for_folder(cls, root: str) -> IgnoreRules:
        """The rules at the folder's top: .git/info/exclude, then its .gitignore."""
        rules = cls()
        exclude = _load(os.path.join(root, ".git", "info", "exclude"), "")
        if exclude is not None:
            rules = IgnoreRules((exclude,))
        return rules.entering(root, "")

    def entering(self, path: str, rel: str) -> IgnoreRules:
        """The rules inside directory `path` (posix `rel` in the folder): these plus its
        own .gitignore, if it has one."""
        own = _load(os.path.join(path, ".gitignore"), rel)
        return IgnoreRules((*self._specs, own)) if own is not None else self

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        """Whether a path (posix, relative to the folder) is ignored: the last pattern that
        matches it, from the outermost file to the innermost, decides."""
        result = False
        for spec in self._specs:
            if spec.base:
                if not rel.startswith(spec.base + "/"):
                    continue
                sub = rel[len(spec.base) + 1 :]
            else:
                sub = rel
            check = spec.spec.check_file(sub + "/" if is_dir else sub)
            if check.include is not None:
                result = check.include
        return result


def _load(path: str, base: str) -> _Spec | None:
    try:
        if os.path.getsize(path) > _MAX_IGNORE_FILE:
            return None
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    return _Spec(base, pathspec.GitIgnoreSpec.from_lines(lines))


def rules_for(root: str, rel_dir: str) -> IgnoreRules | None:
    """The rules inside a directory (posix, relative to the folder), or None when the
    directory or one above it is skipped or ignored."""
    rules = IgnoreRules.for_folder(root)
    path = root
    rel = ""
    for part in [p for p in rel_dir.split("/") if p]:
        path = os.path.join(path, part)
        rel = f"{rel}/{part}" if rel else part
        if skipped_dir_reason(path, part) or rules.ignored(rel, is_dir=True):
            return None
        if os.path.islink(path):
            return None  # symlinked directories are never followed
        rules = rules.entering(path, rel)
    return rules
