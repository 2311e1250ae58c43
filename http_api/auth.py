"""API keys: required to listen beyond loopback, optional on loopback.

The key is HELIOS_API_KEY, or the content of the file HELIOS_API_KEY_FILE names (which must
be private to its owner: a key other local users can read protects nothing). Once a key is
set, every request but `GET /health` must carry `Authorization: Bearer <key>`; the
comparison takes the same time however much of the key matches. The key is never logged,
shown in /status or echoed in an error.
"""

from __future__ import annotations

import hmac
import os
import re
import stat
from pathlib import Path

from helios_lsp.logsafe import safe
from helios_lsp.settings import Settings
from http_api.errors import ApiError, BindRefusedError, ErrorCode

OPEN_PATHS = frozenset({"/health"})  # monitors and editors probe it; it tells nothing secret
MIN_KEY_CHARS = 16
MAX_KEY_CHARS = 4096
_KEY = re.compile(rf"[\x21-\x7e]{{{MIN_KEY_CHARS},{MAX_KEY_CHARS}}}")
_MAX_FILE_BYTES = MAX_KEY_CHARS + 64  # the key and a trailing newline, with room to spare
_GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def load_api_key(settings: Settings) -> str | None:
    """The key in force, or None. Raises BindRefusedError saying what to fix."""
    if settings.api_key is not None and settings.api_key_file is not None:
        raise BindRefusedError("both HELIOS_API_KEY and HELIOS_API_KEY_FILE are set: "
                               "set only one of them")
    if settings.api_key is not None:
        key, source = settings.api_key.get_secret_value(), "HELIOS_API_KEY"
    elif settings.api_key_file is not None:
        key, source = _read_key_file(Path(settings.api_key_file)), "the HELIOS_API_KEY_FILE"
    else:
        return None
    key = key.strip()
    if not _KEY.fullmatch(key):
        raise BindRefusedError(
            f"the API key in {source} must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} visible ASCII "
            f"characters without spaces (make one with: {_GENERATE})")
    return key


def _read_key_file(path: Path) -> str:
    shown = safe(str(path))
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise BindRefusedError(f"cannot read the API key file {shown}: "
                               f"{exc.strerror or exc}") from None
    try:
        # Checked on the open file, so it cannot be swapped between the check and the read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BindRefusedError(f"the API key file {shown} is not a regular file")
        if info.st_mode & 0o077:
            raise BindRefusedError(
                f"the API key file {shown} can be read or written by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): run `chmod 600 {shown}`")
        data = os.read(fd, _MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_FILE_BYTES:
        raise BindRefusedError(f"the API key file {shown} is too large to hold a key")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise BindRefusedError(f"the API key file {shown} must hold ASCII text") from None


def authorized(header: str | None, key: str) -> bool:
    """Whether an Authorization header carries `key` as a Bearer token, in constant time."""
    if header is None:
        return False
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Bytes: compare_digest refuses non-ASCII str, and a client may send anything.
    return hmac.compare_digest(token.strip().encode("utf-8", "replace"), key.encode("ascii"))


def unauthorized(sent: bool) -> ApiError:
    detail = ("the API key is wrong" if sent else "this server requires an API key") + \
        ": send the header Authorization: Bearer <key> with the server's key " \
        "(HELIOS_API_KEY or HELIOS_API_KEY_FILE where it runs)"
    return ApiError(401, ErrorCode.UNAUTHORIZED, detail,
                    {"WWW-Authenticate": 'Bearer realm="helios"'})
