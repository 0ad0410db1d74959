"""GGUF header check: a missing, foreign or truncated model file is a user error before any load."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

from looplab.errors import UserError


def one_line(text: object) -> str:
    return " ".join(str(text).split())


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_MAX_COUNT = 1 << 24  # more tensors or metadata entries than any real model has: the header is garbage


class _Header:
    """A cursor over the mapped file; struct.error or EOFError when a field runs past the end."""

    def __init__(self, data: mmap.mmap):
        self.data, self.pos = data, 4

    def read(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise EOFError
        self.pos += n

    def string(self, keep: bool = True) -> str:
        n, start = self.read("<Q"), self.pos
        self.skip(n)
        return bytes(self.data[start : self.pos]).decode("utf-8", errors="replace") if keep else ""

    def value(self, kind: int) -> Any:
        if kind in _GGUF_SCALARS:
            return self.read(_GGUF_SCALARS[kind])
        if kind == _GGUF_STRING:
            return self.string()
        if kind == _GGUF_ARRAY:  # arrays (vocabulary, merges) are skipped, not decoded
            item, count = self.read("<I"), self.read("<Q")
            if count > _MAX_COUNT:
                raise ValueError(f"array of {count} items")
            if item in _GGUF_SCALARS:
                self.skip(struct.calcsize(_GGUF_SCALARS[item]) * count)
            elif item == _GGUF_STRING:
                for _ in range(count):
                    self.string(keep=False)
            else:
                for _ in range(count):
                    self.value(item)
            return None
        raise ValueError(f"unknown metadata type {kind}")


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """Scalar and string metadata of a GGUF file; UserError when it is missing, not GGUF or truncated."""
    fix = "(fix: pass --model local:PATH with a complete .gguf file, or --model local for the built-in model)"
    if not path.exists():
        raise UserError(f"{path}: model file not found {fix}")
    if not path.is_file():
        raise UserError(f"{path}: not a file {fix}")
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise UserError(f"{path}: not a GGUF model file (it does not start with 'GGUF') {fix}")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                h = _Header(data)
                version = h.read("<I")
                if version not in (2, 3):
                    raise UserError(f"{path}: GGUF version {version} is not supported (fix: use a GGUF v2/v3 file, e.g. re-convert it with a current llama.cpp)")
                n_tensors, n_meta = h.read("<Q"), h.read("<Q")
                if n_tensors > _MAX_COUNT or n_meta > _MAX_COUNT:
                    raise ValueError("implausible tensor or metadata count")
                meta: dict[str, Any] = {}
                for _ in range(n_meta):
                    key = h.string()
                    meta[key] = h.value(h.read("<I"))
                last_offset = 0
                for _ in range(n_tensors):
                    h.string(keep=False)
                    h.skip(8 * h.read("<I") + 4)  # dims, then the tensor type
                    last_offset = max(last_offset, h.read("<Q"))
                align = int(meta.get("general.alignment") or 32)
                data_start = -(-h.pos // align) * align
                size = len(data)
    except OSError as e:
        raise UserError(f"{path}: cannot read the model file: {one_line(e.strerror or e)} {fix}") from None
    except (EOFError, ValueError, struct.error) as e:
        raise UserError(f"{path}: corrupt or truncated GGUF header ({one_line(e) or 'ends early'}) {fix}") from None
    if n_tensors == 0 or data_start + last_offset >= size:
        raise UserError(f"{path}: GGUF file is truncated (tensor data lies past its end) {fix}")
    return meta
