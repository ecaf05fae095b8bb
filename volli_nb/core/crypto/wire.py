"""Strict binary layouts for the session formats: fixed-size fields and minimal varints.

The handshake hello, the ratchet header, the sealed ratchet state and envelope v2
are fixed layouts rather than JSON or CBOR: they are a third of the size of the
canonical JSON envelope and parse with a few slices.  Each value has exactly one
accepted encoding, so two parsers can never disagree about what was signed:

- unsigned integers are LEB128 varints that must be minimal (no ``0x80 0x00``
  continuation that adds nothing) and within the field's range;
- every field is read with its exact length, every length is checked against its
  cap before the bytes are taken;
- a reader refuses trailing bytes (:meth:`Reader.end`).

Errors are raised as the caller's typed class (``MalformedEnvelope``,
``MalformedHandshake``, ``SessionStateCorrupt``...), never as IndexError or ValueError.
"""

from __future__ import annotations

from volli_nb.base.errors import UsageError, VolliError

MAX_SAFE_INT = 2**53 - 1  # the same integer range as JSON-era counters and SQLite
_MAX_VARINT_BYTES = 8  # 7 bits per byte: 8 bytes hold 56 bits, enough for 2**53-1


def uvarint(value: int) -> bytes:
    """The minimal unsigned LEB128 encoding of ``0 <= value <= 2**53-1``."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Reader:
    """Reads one strict layout from ``data``; every defect raises ``error``."""

    __slots__ = ("_data", "_error", "_pos", "what")

    def __init__(self, data: bytes, error: type[VolliError], what: str) -> None:
        self._data = data
        self._error = error
        self._pos = 0
        self.what = what

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def fail(self, message: str) -> VolliError:
        return self._error(f"{self.what}: {message}")

    def take(self, length: int, field: str) -> bytes:
        end = self._pos + length
        if end > len(self._data):
            raise self.fail(f"{field} is truncated (needs {length} bytes)")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def byte(self, field: str) -> int:
        if self._pos >= len(self._data):
            raise self.fail(f"{field} is missing")
        value = self._data[self._pos]
        self._pos += 1
        return value

    def uvarint(self, field: str, low: int = 0, high: int = MAX_SAFE_INT) -> int:
        """A minimal LEB128 varint within ``[low, high]``."""
        data, pos = self._data, self._pos
        if pos < len(data) and data[pos] < 0x80:  # one byte: most counters and lengths
            value = data[pos]
            if not low <= value <= high:
                raise self.fail(f"{field} {value} is outside {low}..{high}")
            self._pos = pos + 1
            return value
        value = shift = 0
        for count in range(_MAX_VARINT_BYTES):
            byte = self.byte(field)
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if byte == 0 and count > 0:
                    raise self.fail(f"{field} is not a minimal varint")
                if not low <= value <= high:
                    raise self.fail(f"{field} {value} is outside {low}..{high}")
                return value
            shift += 7
        raise self.fail(f"{field} varint is longer than {_MAX_VARINT_BYTES} bytes")

    def sized(self, field: str, low: int, high: int) -> bytes:
        """A varint length within ``[low, high]`` followed by that many bytes."""
        return self.take(self.uvarint(f"{field} length", low, high), field)

    def slice(self, start: int, end: int) -> bytes:
        """Bytes already read, e.g. to hash exactly what was parsed."""
        return self._data[start:end]

    def end(self) -> None:
        if self._pos != len(self._data):
            raise self.fail(f"{len(self._data) - self._pos} trailing bytes after the last field")


def as_bytes(data: object, what: str) -> bytes:
    """Accept bytes-like input only: passing text is the caller's mistake, not the peer's."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise UsageError(f"{what} must be bytes, not {type(data).__name__}")


__all__ = ["MAX_SAFE_INT", "Reader", "as_bytes", "uvarint"]
