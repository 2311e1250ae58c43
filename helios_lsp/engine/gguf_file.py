"""Check a GGUF file before llama.cpp sees it.

llama.cpp's loader aborts or crashes on some malformed files; a model file is
untrusted input. This reads the header, the metadata and the tensor table, and
checks that every tensor's data lies inside the file. Scalar metadata is kept
(architecture, FIM token ids, ...); arrays are skipped and only their length kept.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from helios_lsp.engine.errors import InvalidModelFileError

MAGIC = b"GGUF"
_MAX_STRING = 1 << 24  # 16 MiB: no honest key or value is longer
_MAX_COUNT = 1 << 32

# Scalar value types: GGUF type id -> struct format.
_SCALARS = {
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}
_STRING, _ARRAY = 8, 9

# ggml tensor types: id -> (elements per block, bytes per block). Unknown types skip
# the size check rather than reject a newer, valid file.
_QK_K = 256
_TYPE_SIZES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136),
    24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56),
    30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}


@dataclass
class GGUFInfo:
    version: int
    n_tensors: int
    file_size: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", ""))

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int) else None


class _Reader:
    def __init__(self, f: BinaryIO, size: int):
        self.f = f
        self.size = size

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise InvalidModelFileError("the model file is truncated (it ends inside its header)")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("Q")
        if n > _MAX_STRING:
            raise InvalidModelFileError("the model file is corrupt (a header string is too long)")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type = self.unpack("I")
            count = self.unpack("Q")
            if count > _MAX_COUNT:
                raise InvalidModelFileError("the model file is corrupt (an array is too long)")
            if item_type in _SCALARS:
                nbytes = struct.calcsize(_SCALARS[item_type]) * count
                if self.f.tell() + nbytes > self.size:
                    raise InvalidModelFileError("the model file is truncated")
                self.f.seek(nbytes, os.SEEK_CUR)
            else:
                for _ in range(count):
                    self.value(item_type)
            return _ArrayLen(count)
        raise InvalidModelFileError(f"the model file is corrupt (unknown metadata type {vtype})")


class _ArrayLen(int):
    """Stands for an array value: only its length is kept."""


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse and check the file; raise InvalidModelFileError with a user-facing reason."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            return _parse(_Reader(f, size), size)
    except InvalidModelFileError:
        raise
    except (OSError, struct.error, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        reason = type(exc).__name__
        raise InvalidModelFileError(f"the model file cannot be read ({reason})") from None


def _parse(r: _Reader, size: int) -> GGUFInfo:
    if size < 24:
        raise InvalidModelFileError("the model file is empty or too small to be a GGUF model")
    if r.read(4) != MAGIC:
        raise InvalidModelFileError("the model file is not a GGUF model (wrong magic bytes)")
    version = r.unpack("I")
    if version not in (2, 3):
        raise InvalidModelFileError(f"unsupported GGUF version {version} (expected 2 or 3)")
    n_tensors = r.unpack("Q")
    n_kv = r.unpack("Q")
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise InvalidModelFileError("the model file is corrupt (implausible header counts)")

    info = GGUFInfo(version=version, n_tensors=n_tensors, file_size=size)
    for _ in range(n_kv):
        key = r.string()
        vtype = r.unpack("I")
        info.metadata[key] = r.value(vtype)

    data_needed = 0
    for _ in range(n_tensors):
        r.string()  # tensor name
        n_dims = r.unpack("I")
        if n_dims > 8:
            raise InvalidModelFileError("corrupt model file (a tensor has over 8 dimensions)")
        n_elements = 1
        for _ in range(n_dims):
            n_elements *= r.unpack("Q")
        ttype = r.unpack("I")
        offset = r.unpack("Q")
        block, nbytes = _TYPE_SIZES.get(ttype, (0, 0))
        if block:
            data_needed = max(data_needed, offset + n_elements // block * nbytes)

    alignment = info.metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = 32
    data_start = -(-r.f.tell() // alignment) * alignment
    if n_tensors == 0:
        raise InvalidModelFileError("the model file holds no tensors")
    if data_start + data_needed > size:
        raise InvalidModelFileError(
            "the model file is truncated (its tensors need "
            f"{data_start + data_needed} bytes, the file has {size})"
        )
    return info
