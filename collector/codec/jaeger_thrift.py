"""Decode stage, pure-Python reference: Jaeger and Zipkin v1 Thrift (binary and compact protocols) → OTLP / v1 JSON.

What each entry point reads:

* :func:`decode_batch` — a bare ``jaeger.Batch`` struct (Jaeger collector ``POST /api/traces``,
  binary protocol; ``compact=True`` for the compact protocol) → OTLP request bytes;
* :func:`decode_emit_batch` — one agent UDP datagram, a Thrift message ``Agent.emitBatch``
  (binary: strict ``0x8001`` version word or the old non-strict form; compact: protocol id
  ``0x82``, version 1) of type ONEWAY or CALL whose args struct has field 1 = Batch → OTLP bytes;
  any other method (``emitZipkinBatch`` …) is refused;
* :func:`decode_zipkin_v1_thrift` — a binary-protocol ``list<zipkincore.Span>`` (Zipkin
  ``POST /api/v1/spans`` with ``application/x-thrift``) → spans in the Zipkin v1 JSON shape.

Jaeger batches are read into the neutral model of ``collector.codec.jaeger`` and translated by
its :func:`~collector.codec.jaeger.batch_to_otlp` (all the mapping rules live there).  The compiled
twin ``_ext/_jaeger_thrift.pyx`` reads and writes at C level and must give the same bytes and the
same ``DecodeError`` messages, checked in the same order.  Keep the two in step.

Reading rules (both twins):

* every unknown field of any type is skipped, nested structs/lists/sets/maps included; a known
  field sent with another Thrift type, or a known list with another element type (non-empty), is
  an error; a field sent twice: the last one wins (a list is replaced, as generated code does);
* missing fields keep their defaults (0, "", empty), required or not; bytes after the top-level
  struct are ignored;
* nesting (structs and collections) deeper than ``MAX_DEPTH`` is an error, and so is a declared
  size larger than the bytes left (every element takes at least one byte), before anything is
  allocated;
* compact varints are at most 10 bytes; i16/i32 values keep their low 16/32 bits;
* strings are UTF-8 with U+FFFD for invalid bytes; a tag's value is the field its ``vType``
  names (default when absent); an unknown ``vType`` is an error.

Zipkin v1 JSON produced: ``traceId`` 16 hex chars, 32 when ``trace_id_high`` is non-zero; ``id``;
``parentId``, ``timestamp``, ``duration`` only when set and non-zero; ``name``; ``annotations``
``[{timestamp, value, endpoint?}]``; ``binaryAnnotations`` ``[{key, value, type?, endpoint?}]``
where STRING has no ``type`` and a UTF-8 value, BOOL a bool (first byte non-zero), I16/I32/I64 an
int and DOUBLE a float (big-endian, exact length), BYTES — and any value whose length does not
fit its type, or an unknown type — base64 with ``type: "BYTES"``; ``debug: true`` only when set.
Endpoints: ``{serviceName, ipv4?, ipv6?, port?}`` (ipv4 dotted when non-zero, ipv6 when 16 bytes,
port unsigned when non-zero); the service name is kept as sent (not lower-cased).
"""
from __future__ import annotations

import base64
import ipaddress
import struct

from collector.codec.jaeger import JLog, JProcess, JRef, JSpan, JTag, batch_to_otlp
from collector.errors import DecodeError

MAX_DEPTH = 64

# Thrift TType numbering (the binary protocol's; compact types are mapped onto it).
T_STOP, T_BOOL, T_BYTE, T_DOUBLE, T_I16, T_I32, T_I64 = 0, 2, 3, 4, 6, 8, 10
T_STRING, T_STRUCT, T_MAP, T_SET, T_LIST, T_UUID = 11, 12, 13, 14, 15, 16
_BINARY_TYPES = frozenset((2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15, 16))
# compact type id → TType (1 and 2 are BOOL true/false in field headers, BOOL in collections).
_COMPACT_TYPES = (None, T_BOOL, T_BOOL, T_BYTE, T_I16, T_I32, T_I64, T_DOUBLE, T_STRING,
                  T_LIST, T_SET, T_MAP, T_STRUCT, T_UUID)

MSG_CALL, MSG_ONEWAY = 1, 4
_BE_I16 = struct.Struct(">h")
_BE_I32 = struct.Struct(">i")
_BE_I64 = struct.Struct(">q")
_BE_D = struct.Struct(">d")
_LE_D = struct.Struct("<d")
_M64 = 0xFFFFFFFFFFFFFFFF


def _s64(v: int) -> int:
    v &= _M64
    return v - (1 << 64) if v >= (1 << 63) else v


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v


def _s16(v: int) -> int:
    v &= 0xFFFF
    return v - (1 << 16) if v >= (1 << 15) else v


def _unzigzag(v: int) -> int:
    return (v >> 1) ^ -(v & 1)


class _Reader:
    """A bounds-checked cursor over one buffer; subclasses know the protocol."""

    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0
        self.end = len(buf)

    def need(self, n: int, ctx: str) -> int:
        pos = self.pos
        if self.end - pos < n:
            raise DecodeError(f"{ctx}: truncated at offset {pos}")
        self.pos = pos + n
        return pos

    def byte(self, ctx: str) -> int:
        return self.buf[self.need(1, ctx)]

    def check_size(self, n: int, ctx: str, hpos: int, noun: str) -> None:
        if n > self.end - self.pos:
            raise DecodeError(f"{ctx}: {noun} of {n} overruns the buffer at offset {hpos}")

    def text(self, ctx: str) -> str:
        return self.binary(ctx).decode("utf-8", "replace")

    def skip(self, ttype: int, ctx: str, depth: int, in_field: bool) -> None:
        """Skip one value of ``ttype`` (the reader is at its first byte)."""
        if ttype == T_BOOL:
            if not in_field or not self.COMPACT:
                self.need(1, ctx)
        elif ttype == T_BYTE:
            self.need(1, ctx)
        elif ttype == T_I16:
            self.i16(ctx)
        elif ttype == T_I32:
            self.i32(ctx)
        elif ttype == T_I64:
            self.i64(ctx)
        elif ttype == T_DOUBLE:
            self.need(8, ctx)
        elif ttype == T_UUID:
            self.need(16, ctx)
        elif ttype == T_STRING:
            self.binary(ctx)
        elif ttype == T_STRUCT:
            enter(self, ctx, depth)
            self.skip_struct(ctx, depth)
        elif ttype == T_MAP:
            enter(self, ctx, depth)
            ktype, vtype, n = self.map_begin(ctx)
            for _ in range(n):
                self.skip(ktype, ctx, depth + 1, False)
                self.skip(vtype, ctx, depth + 1, False)
        else:  # LIST, SET
            enter(self, ctx, depth)
            etype, n = self.list_begin(ctx)
            for _ in range(n):
                self.skip(etype, ctx, depth + 1, False)

    def skip_struct(self, ctx: str, depth: int) -> None:
        self.struct_begin()
        while True:
            ftype, fid, fpos = self.field_begin(ctx)
            if ftype == T_STOP:
                break
            self.skip(ftype, ctx, depth + 1, True)
        self.struct_end()


def enter(r: _Reader, ctx: str, depth: int) -> None:
    """Refuse a struct or collection that would nest deeper than ``MAX_DEPTH``."""
    if depth + 1 > MAX_DEPTH:
        raise DecodeError(f"{ctx}: nested deeper than {MAX_DEPTH} at offset {r.pos}")


class _Binary(_Reader):
    COMPACT = False

    def struct_begin(self):
        pass

    def struct_end(self):
        pass

    def field_begin(self, ctx):
        fpos = self.pos
        t = self.byte(ctx)
        if t == T_STOP:
            return T_STOP, 0, fpos
        if t not in _BINARY_TYPES:
            raise DecodeError(f"{ctx}: unknown type {t} at offset {fpos}")
        fid = _BE_I16.unpack_from(self.buf, self.need(2, ctx))[0]
        return t, fid, fpos

    def bool_field(self, ctx):
        return self.byte(ctx) != 0

    def i16(self, ctx):
        return _BE_I16.unpack_from(self.buf, self.need(2, ctx))[0]

    def i32(self, ctx):
        return _BE_I32.unpack_from(self.buf, self.need(4, ctx))[0]

    def i64(self, ctx):
        return _BE_I64.unpack_from(self.buf, self.need(8, ctx))[0]

    def double(self, ctx):
        return _BE_D.unpack_from(self.buf, self.need(8, ctx))[0]

    def size(self, ctx):
        hpos = self.pos
        n = self.i32(ctx)
        if n < 0:
            raise DecodeError(f"{ctx}: negative size {n} at offset {hpos}")
        return n

    def binary(self, ctx):
        hpos = self.pos
        n = self.size(ctx)
        self.check_size(n, ctx, hpos, "string")
        p = self.pos
        self.pos = p + n
        return self.buf[p:p + n]

    def list_begin(self, ctx):
        hpos = self.pos
        t = self.byte(ctx)
        n = self.size(ctx)
        self.check_size(n, ctx, hpos, "list")
        if n and t not in _BINARY_TYPES:
            raise DecodeError(f"{ctx}: unknown type {t} at offset {hpos}")
        return t, n

    def map_begin(self, ctx):
        hpos = self.pos
        kt = self.byte(ctx)
        vt = self.byte(ctx)
        n = self.size(ctx)
        self.check_size(n, ctx, hpos, "map")
        if n and kt not in _BINARY_TYPES:
            raise DecodeError(f"{ctx}: unknown type {kt} at offset {hpos}")
        if n and vt not in _BINARY_TYPES:
            raise DecodeError(f"{ctx}: unknown type {vt} at offset {hpos}")
        return kt, vt, n


class _Compact(_Reader):
    COMPACT = True

    def __init__(self, buf):
        super().__init__(buf)
        self.last = 0
        self.stack = []
        self.bool_value = False

    def struct_begin(self):
        self.stack.append(self.last)
        self.last = 0

    def struct_end(self):
        self.last = self.stack.pop()

    def varint(self, ctx):
        vpos = self.pos
        result = shift = 0
        buf, end = self.buf, self.end
        pos = vpos
        while True:
            if pos >= end:
                raise DecodeError(f"{ctx}: truncated at offset {vpos}")
            if shift >= 70:
                raise DecodeError(f"{ctx}: varint too long at offset {vpos}")
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                self.pos = pos
                return result & _M64

    def field_begin(self, ctx):
        fpos = self.pos
        b = self.byte(ctx)
        ct = b & 0x0F
        if ct == 0:
            return T_STOP, 0, fpos
        if ct >= len(_COMPACT_TYPES):
            raise DecodeError(f"{ctx}: unknown type {ct} at offset {fpos}")
        delta = b >> 4
        if delta:
            fid = _s16(self.last + delta)
        else:
            fid = _s16(_unzigzag(self.varint(ctx)))
        self.last = fid
        self.bool_value = ct == 1
        return _COMPACT_TYPES[ct], fid, fpos

    def bool_field(self, ctx):
        return self.bool_value

    def i16(self, ctx):
        return _s16(_unzigzag(self.varint(ctx)))

    def i32(self, ctx):
        return _s32(_unzigzag(self.varint(ctx)))

    def i64(self, ctx):
        return _s64(_unzigzag(self.varint(ctx)))

    def double(self, ctx):
        return _LE_D.unpack_from(self.buf, self.need(8, ctx))[0]

    def binary(self, ctx):
        hpos = self.pos
        n = self.varint(ctx)
        self.check_size(n, ctx, hpos, "string")
        p = self.pos
        self.pos = p + n
        return self.buf[p:p + n]

    def list_begin(self, ctx):
        hpos = self.pos
        b = self.byte(ctx)
        n = b >> 4
        if n == 15:
            n = self.varint(ctx)
        self.check_size(n, ctx, hpos, "list")
        ct = b & 0x0F
        if n and (ct == 0 or ct >= len(_COMPACT_TYPES)):
            raise DecodeError(f"{ctx}: unknown type {ct} at offset {hpos}")
        return _COMPACT_TYPES[ct] if 0 < ct < len(_COMPACT_TYPES) else 0, n

    def map_begin(self, ctx):
        hpos = self.pos
        n = self.varint(ctx)
        if n == 0:
            return 0, 0, 0
        b = self.byte(ctx)
        self.check_size(n, ctx, hpos, "map")
        kt, vt = b >> 4, b & 0x0F
        if kt == 0 or kt >= len(_COMPACT_TYPES):
            raise DecodeError(f"{ctx}: unknown type {kt} at offset {hpos}")
        if vt == 0 or vt >= len(_COMPACT_TYPES):
            raise DecodeError(f"{ctx}: unknown type {vt} at offset {hpos}")
        return _COMPACT_TYPES[kt], _COMPACT_TYPES[vt], n


_TYPE_NAMES = {T_BOOL: "bool", T_BYTE: "byte", T_DOUBLE: "double", T_I16: "i16", T_I32: "i32",
               T_I64: "i64", T_STRING: "string", T_STRUCT: "struct", T_MAP: "map", T_SET: "set",
               T_LIST: "list", T_UUID: "uuid"}


def _expect(ftype: int, want: int, ctx: str, name: str, fpos: int) -> None:
    if ftype != want:
        raise DecodeError(f"{ctx}.{name}: Thrift type {_TYPE_NAMES[ftype]}, expected "
                          f"{_TYPE_NAMES[want]} (at offset {fpos})")


def _list_of(r: _Reader, ftype: int, want: int, ctx: str, name: str, fpos: int, depth: int) -> int:
    """Open a known list field whose elements are ``want``; returns the element count."""
    _expect(ftype, T_LIST, ctx, name, fpos)
    enter(r, ctx, depth)
    hpos = r.pos
    etype, n = r.list_begin(ctx)
    if n and etype != want:
        raise DecodeError(f"{ctx}.{name}: list of {_TYPE_NAMES[etype]}, expected "
                          f"{_TYPE_NAMES[want]} (at offset {hpos})")
    return n


# --- Jaeger structs (jaeger.thrift) -----------------------------------------------------------

def _tag(r: _Reader, depth: int) -> JTag:
    spos = r.pos
    enter(r, "Tag", depth)
    depth += 1
    key, vtype, vstr, vdouble, vbool, vlong, vbinary = "", 0, "", 0.0, False, 0, b""
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("Tag")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_STRING, "Tag", "key", fpos)
            key = r.text("Tag")
        elif fid == 2:
            _expect(ftype, T_I32, "Tag", "vType", fpos)
            vtype = r.i32("Tag")
        elif fid == 3:
            _expect(ftype, T_STRING, "Tag", "vStr", fpos)
            vstr = r.text("Tag")
        elif fid == 4:
            _expect(ftype, T_DOUBLE, "Tag", "vDouble", fpos)
            vdouble = r.double("Tag")
        elif fid == 5:
            _expect(ftype, T_BOOL, "Tag", "vBool", fpos)
            vbool = r.bool_field("Tag")
        elif fid == 6:
            _expect(ftype, T_I64, "Tag", "vLong", fpos)
            vlong = r.i64("Tag")
        elif fid == 7:
            _expect(ftype, T_STRING, "Tag", "vBinary", fpos)
            vbinary = r.binary("Tag")
        else:
            r.skip(ftype, "Tag", depth, True)
    r.struct_end()
    if vtype == 0:
        return JTag(key, 0, vstr)
    if vtype == 1:
        return JTag(key, 1, vdouble)
    if vtype == 2:
        return JTag(key, 2, vbool)
    if vtype == 3:
        return JTag(key, 3, vlong)
    if vtype == 4:
        return JTag(key, 4, vbinary)
    raise DecodeError(f"Tag.vType: unknown tag type {vtype} (Tag at offset {spos})")


def _tags(r, ftype, ctx, name, fpos, depth) -> list:
    n = _list_of(r, ftype, T_STRUCT, ctx, name, fpos, depth)
    return [_tag(r, depth + 1) for _ in range(n)]


def _log(r: _Reader, depth: int) -> JLog:
    enter(r, "Log", depth)
    depth += 1
    ts, fields = 0, []
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("Log")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_I64, "Log", "timestamp", fpos)
            ts = r.i64("Log")
        elif fid == 2:
            fields = _tags(r, ftype, "Log", "fields", fpos, depth)
        else:
            r.skip(ftype, "Log", depth, True)
    r.struct_end()
    return JLog(ts * 1000, fields)


def _ref(r: _Reader, depth: int) -> JRef:
    enter(r, "SpanRef", depth)
    depth += 1
    ref_type = low = high = span_id = 0
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("SpanRef")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_I32, "SpanRef", "refType", fpos)
            ref_type = r.i32("SpanRef")
        elif fid == 2:
            _expect(ftype, T_I64, "SpanRef", "traceIdLow", fpos)
            low = r.i64("SpanRef")
        elif fid == 3:
            _expect(ftype, T_I64, "SpanRef", "traceIdHigh", fpos)
            high = r.i64("SpanRef")
        elif fid == 4:
            _expect(ftype, T_I64, "SpanRef", "spanId", fpos)
            span_id = r.i64("SpanRef")
        else:
            r.skip(ftype, "SpanRef", depth, True)
    r.struct_end()
    return JRef(ref_type, _BE_I64.pack(high) + _BE_I64.pack(low), _BE_I64.pack(span_id))


def _span(r: _Reader, depth: int) -> JSpan:
    enter(r, "Span", depth)
    depth += 1
    low = high = span_id = parent = flags = start = duration = 0
    name, refs, tags, logs = "", [], [], []
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("Span")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_I64, "Span", "traceIdLow", fpos)
            low = r.i64("Span")
        elif fid == 2:
            _expect(ftype, T_I64, "Span", "traceIdHigh", fpos)
            high = r.i64("Span")
        elif fid == 3:
            _expect(ftype, T_I64, "Span", "spanId", fpos)
            span_id = r.i64("Span")
        elif fid == 4:
            _expect(ftype, T_I64, "Span", "parentSpanId", fpos)
            parent = r.i64("Span")
        elif fid == 5:
            _expect(ftype, T_STRING, "Span", "operationName", fpos)
            name = r.text("Span")
        elif fid == 6:
            n = _list_of(r, ftype, T_STRUCT, "Span", "references", fpos, depth)
            refs = [_ref(r, depth + 1) for _ in range(n)]
        elif fid == 7:
            _expect(ftype, T_I32, "Span", "flags", fpos)
            flags = r.i32("Span")
        elif fid == 8:
            _expect(ftype, T_I64, "Span", "startTime", fpos)
            start = r.i64("Span")
        elif fid == 9:
            _expect(ftype, T_I64, "Span", "duration", fpos)
            duration = r.i64("Span")
        elif fid == 10:
            tags = _tags(r, ftype, "Span", "tags", fpos, depth)
        elif fid == 11:
            n = _list_of(r, ftype, T_STRUCT, "Span", "logs", fpos, depth)
            logs = [_log(r, depth + 1) for _ in range(n)]
        else:
            r.skip(ftype, "Span", depth, True)
    r.struct_end()
    return JSpan(_BE_I64.pack(high) + _BE_I64.pack(low), _BE_I64.pack(span_id), _BE_I64.pack(parent),
                 name, refs, flags, start * 1000, duration * 1000, tags, logs, None)


def _process(r: _Reader, depth: int) -> JProcess:
    enter(r, "Process", depth)
    depth += 1
    service, tags = "", []
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("Process")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_STRING, "Process", "serviceName", fpos)
            service = r.text("Process")
        elif fid == 2:
            tags = _tags(r, ftype, "Process", "tags", fpos, depth)
        else:
            r.skip(ftype, "Process", depth, True)
    r.struct_end()
    return JProcess(service, tags)


def _batch(r: _Reader, depth: int):
    """Read a ``jaeger.Batch`` struct: (process or None, [JSpan])."""
    enter(r, "Batch", depth)
    depth += 1
    process, spans = None, []
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("Batch")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_STRUCT, "Batch", "process", fpos)
            process = _process(r, depth)
        elif fid == 2:
            n = _list_of(r, ftype, T_STRUCT, "Batch", "spans", fpos, depth)
            spans = [_span(r, depth + 1) for _ in range(n)]
        else:
            r.skip(ftype, "Batch", depth, True)
    r.struct_end()
    return process, spans


def _reader(buf, compact: bool) -> _Reader:
    buf = bytes(buf)
    return _Compact(buf) if compact else _Binary(buf)


def read_batch(buf, compact: bool = False):
    """A bare ``jaeger.Batch`` → (JProcess or None, [JSpan]); ``DecodeError`` if malformed."""
    return _batch(_reader(buf, compact), 0)


def decode_batch(buf, compact: bool = False) -> bytes:
    """A bare Thrift ``jaeger.Batch`` (binary protocol unless ``compact``) → OTLP request bytes."""
    process, spans = read_batch(buf, compact)
    return batch_to_otlp(process, spans)


def _message_begin(r: _Reader, compact: bool) -> str:
    """Read a message envelope; return the method name (type checked: CALL or ONEWAY)."""
    ctx = "message"
    if compact:
        pid = r.byte(ctx)
        if pid != 0x82:
            raise DecodeError(f"message: protocol id 0x{pid:02x}, expected 0x82 (Thrift compact)")
        b = r.byte(ctx)
        version, mtype = b & 0x1F, b >> 5
        if version != 1:
            raise DecodeError(f"message: compact protocol version {version}, expected 1")
        r.varint(ctx)  # seqid
        name = r.binary(ctx)
    else:
        word = r.i32(ctx)
        if word < 0:
            version = word & 0xFFFF0000
            if version != 0x80010000:
                raise DecodeError(f"message: binary protocol version 0x{version:08x}, expected 0x80010000")
            mtype = word & 0xFF
            name = r.binary(ctx)
            r.i32(ctx)  # seqid
        else:
            r.pos -= 4
            name = r.binary(ctx)
            mtype = r.byte(ctx)
            r.i32(ctx)  # seqid
    if mtype not in (MSG_CALL, MSG_ONEWAY):
        raise DecodeError(f"message: type {mtype}, expected CALL (1) or ONEWAY (4)")
    return name.decode("utf-8", "replace")


def read_emit_batch(buf, compact: bool):
    """An ``Agent.emitBatch`` datagram → (JProcess or None, [JSpan]); ``DecodeError`` otherwise."""
    r = _reader(buf, compact)
    name = _message_begin(r, compact)
    if name != "emitBatch":
        raise DecodeError(f"message: method {name!r} is not supported, only emitBatch "
                          "(Jaeger Thrift; send Zipkin spans to the Zipkin port)")
    process, spans = None, []
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("emitBatch_args")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_STRUCT, "emitBatch_args", "batch", fpos)
            process, spans = _batch(r, 1)
        else:
            r.skip(ftype, "emitBatch_args", 1, True)
    r.struct_end()
    return process, spans


def decode_emit_batch(buf, compact: bool) -> bytes:
    """One Jaeger agent UDP datagram (``Agent.emitBatch``) → OTLP request bytes."""
    process, spans = read_emit_batch(buf, compact)
    return batch_to_otlp(process, spans)


# --- Zipkin v1 (zipkincore.thrift) -------------------------------------------------------------

_ANNOTATION_TYPES = {0: "BOOL", 1: "BYTES", 2: "I16", 3: "I32", 4: "I64", 5: "DOUBLE", 6: "STRING"}


def _hex64(v: int) -> str:
    return format(v & _M64, "016x")


def _endpoint(r: _Reader, depth: int) -> dict:
    enter(r, "Endpoint", depth)
    depth += 1
    ipv4 = port = 0
    service, ipv6 = "", None
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("Endpoint")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_I32, "Endpoint", "ipv4", fpos)
            ipv4 = r.i32("Endpoint")
        elif fid == 2:
            _expect(ftype, T_I16, "Endpoint", "port", fpos)
            port = r.i16("Endpoint")
        elif fid == 3:
            _expect(ftype, T_STRING, "Endpoint", "service_name", fpos)
            service = r.text("Endpoint")
        elif fid == 4:
            _expect(ftype, T_STRING, "Endpoint", "ipv6", fpos)
            ipv6 = r.binary("Endpoint")
        else:
            r.skip(ftype, "Endpoint", depth, True)
    r.struct_end()
    return endpoint_json(service, ipv4, port, ipv6)


def endpoint_json(service: str, ipv4: int, port: int, ipv6) -> dict:
    """A Zipkin v1 JSON endpoint."""
    ep = {"serviceName": service}
    if ipv4:
        ep["ipv4"] = str(ipaddress.IPv4Address(ipv4 & 0xFFFFFFFF))
    if ipv6 is not None and len(ipv6) == 16:
        ep["ipv6"] = str(ipaddress.IPv6Address(ipv6))
    if port:
        ep["port"] = port & 0xFFFF
    return ep


def _annotation(r: _Reader, depth: int) -> dict:
    enter(r, "Annotation", depth)
    depth += 1
    ts, value, host = 0, "", None
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("Annotation")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_I64, "Annotation", "timestamp", fpos)
            ts = r.i64("Annotation")
        elif fid == 2:
            _expect(ftype, T_STRING, "Annotation", "value", fpos)
            value = r.text("Annotation")
        elif fid == 3:
            _expect(ftype, T_STRUCT, "Annotation", "host", fpos)
            host = _endpoint(r, depth)
        else:
            r.skip(ftype, "Annotation", depth, True)
    r.struct_end()
    out = {"timestamp": ts, "value": value}
    if host is not None:
        out["endpoint"] = host
    return out


def binary_annotation_value(atype: int, value: bytes):
    """(JSON value, type name or None) of a binary annotation, by the rules in the docstring."""
    n = len(value)
    if atype == 6:
        return value.decode("utf-8", "replace"), None
    if atype == 0 and n == 1:
        return value[0] != 0, "BOOL"
    if atype == 2 and n == 2:
        return _BE_I16.unpack(value)[0], "I16"
    if atype == 3 and n == 4:
        return _BE_I32.unpack(value)[0], "I32"
    if atype == 4 and n == 8:
        return _BE_I64.unpack(value)[0], "I64"
    if atype == 5 and n == 8:
        return _BE_D.unpack(value)[0], "DOUBLE"
    return base64.b64encode(value).decode("ascii"), "BYTES"


def _binary_annotation(r: _Reader, depth: int) -> dict:
    enter(r, "BinaryAnnotation", depth)
    depth += 1
    key, value, atype, host = "", b"", 0, None
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("BinaryAnnotation")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_STRING, "BinaryAnnotation", "key", fpos)
            key = r.text("BinaryAnnotation")
        elif fid == 2:
            _expect(ftype, T_STRING, "BinaryAnnotation", "value", fpos)
            value = r.binary("BinaryAnnotation")
        elif fid == 3:
            _expect(ftype, T_I32, "BinaryAnnotation", "annotation_type", fpos)
            atype = r.i32("BinaryAnnotation")
        elif fid == 4:
            _expect(ftype, T_STRUCT, "BinaryAnnotation", "host", fpos)
            host = _endpoint(r, depth)
        else:
            r.skip(ftype, "BinaryAnnotation", depth, True)
    r.struct_end()
    v, tname = binary_annotation_value(atype, value)
    out = {"key": key, "value": v}
    if tname is not None:
        out["type"] = tname
    if host is not None:
        out["endpoint"] = host
    return out


def _zipkin_span(r: _Reader, depth: int) -> dict:
    enter(r, "ZipkinSpan", depth)
    depth += 1
    trace_id = span_id = parent = ts = duration = high = 0
    name, annotations, binary_annotations, debug = "", [], [], False
    r.struct_begin()
    while True:
        ftype, fid, fpos = r.field_begin("ZipkinSpan")
        if ftype == T_STOP:
            break
        if fid == 1:
            _expect(ftype, T_I64, "ZipkinSpan", "trace_id", fpos)
            trace_id = r.i64("ZipkinSpan")
        elif fid == 3:
            _expect(ftype, T_STRING, "ZipkinSpan", "name", fpos)
            name = r.text("ZipkinSpan")
        elif fid == 4:
            _expect(ftype, T_I64, "ZipkinSpan", "id", fpos)
            span_id = r.i64("ZipkinSpan")
        elif fid == 5:
            _expect(ftype, T_I64, "ZipkinSpan", "parent_id", fpos)
            parent = r.i64("ZipkinSpan")
        elif fid == 6:
            n = _list_of(r, ftype, T_STRUCT, "ZipkinSpan", "annotations", fpos, depth)
            annotations = [_annotation(r, depth + 1) for _ in range(n)]
        elif fid == 8:
            n = _list_of(r, ftype, T_STRUCT, "ZipkinSpan", "binary_annotations", fpos, depth)
            binary_annotations = [_binary_annotation(r, depth + 1) for _ in range(n)]
        elif fid == 9:
            _expect(ftype, T_BOOL, "ZipkinSpan", "debug", fpos)
            debug = r.bool_field("ZipkinSpan")
        elif fid == 10:
            _expect(ftype, T_I64, "ZipkinSpan", "timestamp", fpos)
            ts = r.i64("ZipkinSpan")
        elif fid == 11:
            _expect(ftype, T_I64, "ZipkinSpan", "duration", fpos)
            duration = r.i64("ZipkinSpan")
        elif fid == 12:
            _expect(ftype, T_I64, "ZipkinSpan", "trace_id_high", fpos)
            high = r.i64("ZipkinSpan")
        else:
            r.skip(ftype, "ZipkinSpan", depth, True)
    r.struct_end()
    out = {"traceId": (_hex64(high) if high else "") + _hex64(trace_id), "id": _hex64(span_id),
           "name": name}
    if parent:
        out["parentId"] = _hex64(parent)
    if ts:
        out["timestamp"] = ts
    if duration:
        out["duration"] = duration
    out["annotations"] = annotations
    out["binaryAnnotations"] = binary_annotations
    if debug:
        out["debug"] = True
    return out


def decode_zipkin_v1_thrift(buf) -> list:
    """A binary-protocol ``list<zipkincore.Span>`` → spans in the Zipkin v1 JSON shape."""
    r = _Binary(bytes(buf))
    n = _list_of(r, T_LIST, T_STRUCT, "ZipkinSpans", "spans", 0, 0)
    return [_zipkin_span(r, 1) for _ in range(n)]
