"""Measure stage: minimal Thrift binary (strict) and compact protocol encoders for the load generator.

Only writing, only what Jaeger's IDL needs (structs, lists, bool, i32, i64, double, binary/string,
and a message header for ``Agent.emitBatch``).  Both writers append to one ``bytearray`` and
return the offset at which each scalar *value* starts, so a caller can record where the IDs and
timestamps sit and rewrite them in place later.

Wire rules followed (Apache Thrift ``TBinaryProtocol`` / ``TCompactProtocol``):

* binary: big-endian; a field is ``type:i8 id:i16 value``; a struct ends with STOP (0); a list is
  ``elem_type:i8 size:i32``; strings are ``len:i32`` + bytes; a strict message header is
  ``0x8001_00tt:i32 name seqid:i32``.
* compact: field header ``(delta << 4) | ctype`` when the id grows by 1..15, else ``ctype`` then
  the id as a zigzag varint; field deltas restart inside each struct; bool fields carry their
  value in the type nibble (1 true, 2 false); i16/i32/i64 are zigzag varints; doubles are 8 bytes
  *little*-endian; strings are ``varint len`` + bytes; a list header is ``(size << 4) | ctype``
  when size < 15, else ``0xF0 | ctype`` and a varint size; the message header is ``0x82``,
  ``(type << 5) | 1``, ``varint seqid``, name.
"""
from __future__ import annotations

import struct

# Thrift type ids (binary protocol; also the public TType numbering).
STOP, BOOL, BYTE, DOUBLE, I16, I32, I64, STRING, STRUCT, MAP, SET, LIST = 0, 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15
# Message types.
CALL, REPLY, EXCEPTION, ONEWAY = 1, 2, 3, 4

_COMPACT = {BOOL: 1, BYTE: 3, I16: 4, I32: 5, I64: 6, DOUBLE: 7, STRING: 8, LIST: 9, SET: 10,
            MAP: 11, STRUCT: 12}
_C_TRUE, _C_FALSE = 1, 2

_BE_I8 = struct.Struct(">b")
_BE_I16 = struct.Struct(">h")
_BE_I32 = struct.Struct(">i")
_BE_I64 = struct.Struct(">q")
_BE_D = struct.Struct(">d")
_LE_D = struct.Struct("<d")


def signed64(v: int) -> int:
    """An unsigned 64-bit value (as from 8 big-endian ID bytes) as Thrift's signed i64."""
    return v - (1 << 64) if v >= 1 << 63 else v


def zigzag64(v: int) -> int:
    return ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class BinaryWriter:
    """Thrift binary protocol (strict) writer."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def message_begin(self, name: str, mtype: int, seqid: int) -> None:
        b = name.encode()
        self.buf += _BE_I32.pack(-0x7FFF0000 | mtype)  # 0x80010000 | type as a signed i32
        self.buf += _BE_I32.pack(len(b)) + b + _BE_I32.pack(seqid)

    def struct_begin(self) -> None:
        pass

    def struct_end(self) -> None:
        self.buf.append(STOP)

    def field(self, ttype: int, fid: int) -> None:
        self.buf += _BE_I8.pack(ttype) + _BE_I16.pack(fid)

    def field_bool(self, fid: int, value: bool) -> None:
        self.field(BOOL, fid)
        self.buf.append(1 if value else 0)

    def list_begin(self, etype: int, size: int) -> None:
        self.buf += _BE_I8.pack(etype) + _BE_I32.pack(size)

    def i32(self, v: int) -> int:
        pos = len(self.buf)
        self.buf += _BE_I32.pack(v)
        return pos

    def i64(self, v: int) -> int:
        pos = len(self.buf)
        self.buf += _BE_I64.pack(v)
        return pos

    def double(self, v: float) -> int:
        pos = len(self.buf)
        self.buf += _BE_D.pack(v)
        return pos

    def binary(self, b: bytes) -> int:
        self.buf += _BE_I32.pack(len(b))
        pos = len(self.buf)
        self.buf += b
        return pos

    def string(self, s: str) -> int:
        return self.binary(s.encode("utf-8"))

    def raw(self, b: bytes) -> int:
        """Append bytes that are already encoded in this protocol (a struct written elsewhere)."""
        pos = len(self.buf)
        self.buf += b
        return pos


class CompactWriter:
    """Thrift compact protocol writer."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._last = [0]  # last field id, per open struct

    def message_begin(self, name: str, mtype: int, seqid: int) -> None:
        self.buf += bytes((0x82, ((mtype << 5) & 0xE0) | 1))
        self.buf += uvarint(seqid & 0xFFFFFFFF)
        self.string(name)

    def struct_begin(self) -> None:
        self._last.append(0)

    def struct_end(self) -> None:
        self.buf.append(STOP)
        self._last.pop()

    def _header(self, ctype: int, fid: int) -> None:
        delta = fid - self._last[-1]
        if 0 < delta <= 15:
            self.buf.append((delta << 4) | ctype)
        else:
            self.buf.append(ctype)
            self.buf += uvarint(zigzag64(fid))
        self._last[-1] = fid

    def field(self, ttype: int, fid: int) -> None:
        if ttype == BOOL:
            raise ValueError("compact bool fields carry their value: use field_bool")
        self._header(_COMPACT[ttype], fid)

    def field_bool(self, fid: int, value: bool) -> None:
        self._header(_C_TRUE if value else _C_FALSE, fid)

    def list_begin(self, etype: int, size: int) -> None:
        ctype = _COMPACT[etype]
        if size < 15:
            self.buf.append((size << 4) | ctype)
        else:
            self.buf.append(0xF0 | ctype)
            self.buf += uvarint(size)

    def i32(self, v: int) -> int:
        pos = len(self.buf)
        self.buf += uvarint(((v << 1) ^ (v >> 31)) & 0xFFFFFFFF)
        return pos

    def i64(self, v: int) -> int:
        pos = len(self.buf)
        self.buf += uvarint(zigzag64(v))
        return pos

    def double(self, v: float) -> int:
        pos = len(self.buf)
        self.buf += _LE_D.pack(v)
        return pos

    def binary(self, b: bytes) -> int:
        self.buf += uvarint(len(b))
        pos = len(self.buf)
        self.buf += b
        return pos

    def string(self, s: str) -> int:
        return self.binary(s.encode("utf-8"))

    def raw(self, b: bytes) -> int:
        pos = len(self.buf)
        self.buf += b
        return pos


def writer(protocol: str):
    """A fresh writer for ``"binary"`` or ``"compact"``."""
    if protocol == "binary":
        return BinaryWriter()
    if protocol == "compact":
        return CompactWriter()
    raise ValueError(f"unknown Thrift protocol {protocol!r}")
