"""Names of files that are never read: keys, credentials, environment files.

Decided by the name alone, before a file is opened.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Sequence

from helios_lsp.engine.context.filetypes import LANGUAGE_BY_EXTENSION

# Matched against the last component of a path, case-insensitively.
SECRET_GLOBS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "id_*",  # ssh keys (id_rsa, id_ed25519, ...)
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    ".npmrc",
    ".netrc",
    "_netrc",
    ".pypirc",
    ".pgpass",
    ".htpasswd",
    "credentials",
    "credentials.json",
    "secrets.json",
    "secrets.yaml",
    "secrets.yml",
)


def is_secret(name: str, extra_globs: Sequence[str] = ()) -> bool:
    """True when a file of this name (a path or a bare name) must never be read."""
    base = posixpath.basename(name.replace("\\", "/")).lower()
    if not base:
        return False
    for pattern in (*SECRET_GLOBS, *extra_globs):
        pattern = pattern.lower()
        # `id_*` is for ssh keys (id_rsa, id_ed25519.pub): source files such as
        # id_map.py are not keys.
        if pattern == "id_*" and posixpath.splitext(base)[1] in LANGUAGE_BY_EXTENSION:
            continue
        # A pattern with a slash is matched against the whole path, others against the name.
        subject = name.replace("\\", "/").lower() if "/" in pattern else base
        if fnmatch.fnmatchcase(subject, pattern):
            return True
    return False
