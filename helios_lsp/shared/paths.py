"""Where a user's shared engines live, and which one a process belongs to.

One private directory per user (`$XDG_RUNTIME_DIR/helios`, else `/tmp/helios-<uid>`), mode
0700 and owned by the user: another local user can neither reach a socket in it nor put
one there. Each engine is named by a hash of the settings that shape its answers, so other
engine settings (another model, another `HELIOS_ENGINE`) get another engine, never a
silent swap.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from helios_lsp.settings import Settings

# What only the adapters use (the HTTP listener, its limits, the request defaults they fill
# in, this process's own life): two processes that differ only here share one engine. Every
# other setting, including any added later, separates engines.
ADAPTER_FIELDS = frozenset({
    "host", "port", "debug", "allow_remote", "rate_limit", "rate_burst", "max_body_bytes",
    "request_timeout", "keepalive_timeout", "max_connections", "api_key", "api_key_file",
    "parent_pid", "share", "share_idle", "max_tokens", "max_tokens_limit", "temperature",
    # Where context comes from is the forwarder's business (it chooses the block); only its
    # size in the prompt (context_tokens) shapes the engine.
    "context_workspace", "context_max_files", "context_max_bytes", "context_secrets",
})


class UnsafeRuntimeDirError(RuntimeError):
    """The directory for sockets is not private to this user: sharing is off."""


def runtime_dir() -> Path:
    """This user's private directory for engine sockets, created 0700 if missing.

    Raises UnsafeRuntimeDirError when it exists but another user owns it or others may
    enter it (someone may be waiting there to impersonate the engine)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    uid = os.getuid()
    path = Path(base) / "helios" if base else Path("/tmp") / f"helios-{uid}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise UnsafeRuntimeDirError(f"cannot use {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeRuntimeDirError(f"{path} is not a directory")
    if info.st_uid != uid:
        raise UnsafeRuntimeDirError(f"{path} belongs to another user")
    if info.st_mode & 0o077:
        raise UnsafeRuntimeDirError(f"{path} is open to other users (mode "
                                    f"{stat.S_IMODE(info.st_mode):o}); it must be 0700")
    return path


def _absolute(value: str | None) -> str | None:
    """A relative model or cache path made absolute: the engine runs elsewhere (cwd /)."""
    if value and not os.path.isabs(value) and os.path.exists(value):
        return os.path.abspath(value)
    return value


def engine_settings(settings: Settings) -> Settings:
    """`settings` as the shared engine runs them: paths absolute, no sharing of its own."""
    return settings.replace(model=_absolute(settings.model),
                            cache_dir=_absolute(settings.cache_dir), share=False)


def engine_key(settings: Settings) -> str:
    """A short name for the engine these settings ask for (settings as from
    `engine_settings`)."""
    shaping = {}
    for name, value in settings.model_dump(mode="json").items():
        if name in ADAPTER_FIELDS:
            continue
        secret = getattr(settings, name)
        if hasattr(secret, "get_secret_value"):  # a key's hash, never the key itself
            value = hashlib.sha256(secret.get_secret_value().encode()).hexdigest()
        shaping[name] = value
    blob = json.dumps(shaping, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


@dataclass(frozen=True)
class EnginePaths:
    key: str
    socket: Path  # the engine's private HTTP API
    lock: Path  # held by the engine for its whole life
    spawn_lock: Path  # held by whoever is starting one, so only one starts
    log: Path  # the engine's log (it has no terminal)

    @classmethod
    def of(cls, key: str, directory: Path | None = None) -> EnginePaths:
        d = directory or runtime_dir()
        return cls(key, d / f"engine-{key}.sock", d / f"engine-{key}.lock",
                   d / f"engine-{key}.spawn", d / f"engine-{key}.log")


def all_engines(directory: Path | None = None) -> list[EnginePaths]:
    """Every engine this user has a socket for (running or left behind by a crash)."""
    d = directory or runtime_dir()
    keys = sorted(p.name[len("engine-"):-len(".sock")] for p in d.glob("engine-*.sock"))
    return [EnginePaths.of(key, d) for key in keys]


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int


def peer_of(sock: socket.socket) -> Peer | None:
    """Who is at the other end of a unix socket (Linux SO_PEERCRED), or None elsewhere."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or sock.family != socket.AF_UNIX:
        return None
    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option,
                                                         struct.calcsize("3i")))
    return Peer(pid, uid)
