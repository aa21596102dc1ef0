"""A small UBJSON decoder for XGBoost's `.ubj` model files, so serving starts without importing xgboost.

XGBoost writes Universal Binary JSON (draft 12, big-endian) with strongly typed, counted arrays for the
tree columns (`[$d#L…` for float32, `[$l#L…` for int32, `[$U#L…` for uint8). Those become NumPy arrays
(one `frombuffer` each), everything else becomes plain Python values. The decoder refuses anything it
does not understand with `IntegrityError`, so a corrupt file is reported, never half-read.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from tideml.errors import IntegrityError

__all__ = ["decode_ubjson"]

_SCALARS: dict[int, tuple[str, int]] = {
    ord("i"): (">b", 1),
    ord("U"): (">B", 1),
    ord("I"): (">h", 2),
    ord("l"): (">i", 4),
    ord("L"): (">q", 8),
    ord("d"): (">f", 4),
    ord("D"): (">d", 8),
}
_DTYPES: dict[int, str] = {
    ord("i"): ">i1",
    ord("U"): "u1",
    ord("I"): ">i2",
    ord("l"): ">i4",
    ord("L"): ">i8",
    ord("d"): ">f4",
    ord("D"): ">f8",
}
_NATIVE: dict[str, str] = {
    ">i1": "i1",
    "u1": "u1",
    ">i2": "i2",
    ">i4": "i4",
    ">i8": "i8",
    ">f4": "f4",
    ">f8": "f8",
}


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.name = name

    def fail(self, what: str) -> IntegrityError:
        return IntegrityError(
            f"not a valid UBJSON model ({what} at byte {self.pos})",
            obj=self.name,
            fix="the booster file is corrupt; restore it or retrain the model",
        )

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of data")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def peek(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of data")
        return self.data[self.pos]

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail("length past the end of data")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def scalar(self, marker: int) -> Any:
        fmt, size = _SCALARS[marker]
        return struct.unpack(fmt, self.take(size))[0]

    def length(self) -> int:
        marker = self.byte()
        if marker not in _SCALARS or marker in (ord("d"), ord("D")):
            raise self.fail(f"bad length marker {chr(marker)!r}")
        n = int(self.scalar(marker))
        if n < 0:
            raise self.fail("negative length")
        return n

    def string(self) -> str:
        raw = self.take(self.length())
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("invalid UTF-8 in a string") from None

    def value(self, marker: int | None = None) -> Any:
        m = self.byte() if marker is None else marker
        if m in _SCALARS:
            return self.scalar(m)
        if m == ord("S") or m == ord("H"):
            return self.string()
        if m == ord("C"):
            return chr(self.byte())
        if m == ord("T"):
            return True
        if m == ord("F"):
            return False
        if m == ord("Z"):
            return None
        if m == ord("["):
            return self.array()
        if m == ord("{"):
            return self.object()
        raise self.fail(f"unknown marker {chr(m)!r}")

    def _container_header(self) -> tuple[int | None, int | None]:
        typ: int | None = None
        count: int | None = None
        if self.peek() == ord("$"):
            self.pos += 1
            typ = self.byte()
            if self.byte() != ord("#"):
                raise self.fail("a typed container needs a count")
            return typ, self.length()
        if self.peek() == ord("#"):
            self.pos += 1
            count = self.length()
        return typ, count

    def array(self) -> Any:
        typ, count = self._container_header()
        if typ is not None and count is not None and typ in _DTYPES:
            dtype = _DTYPES[typ]
            size = np.dtype(dtype).itemsize
            buf = self.take(count * size)
            return np.frombuffer(buf, dtype=dtype).astype(_NATIVE[dtype])
        if count is not None:
            return [self.value(typ) for _ in range(count)]
        out: list[Any] = []
        while self.peek() != ord("]"):
            if self.peek() == ord("N"):
                self.pos += 1
                continue
            out.append(self.value())
        self.pos += 1
        return out

    def object(self) -> dict[str, Any]:
        typ, count = self._container_header()
        out: dict[str, Any] = {}
        if count is not None:
            for _ in range(count):
                key = self.string()
                out[key] = self.value(typ)
            return out
        while self.peek() != ord("}"):
            if self.peek() == ord("N"):
                self.pos += 1
                continue
            key = self.string()
            out[key] = self.value()
        self.pos += 1
        return out


def decode_ubjson(data: bytes, *, name: str = "model.ubj") -> Any:
    """Decode one UBJSON document; typed numeric arrays become NumPy arrays."""
    reader = _Reader(data, name)
    try:
        result = reader.value()
    except (struct.error, ValueError, KeyError, RecursionError) as exc:
        raise reader.fail(type(exc).__name__) from exc
    if reader.pos != len(reader.data):
        raise reader.fail("trailing bytes after the document")
    return result
