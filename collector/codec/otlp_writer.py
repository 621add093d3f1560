"""Decode stage: the OTLP protobuf writer every translator (Jaeger, Zipkin) uses to emit spans.

Translators turn foreign wire formats into ``ExportTraceServiceRequest`` bytes, which then take
the same path as OTLP input.  The compiled twins write the same bytes with ``_ext/pbwriter.pxd``;
the rules both follow, so their outputs are equal byte for byte:

* fields in the order the builder functions below write them (field-number order);
* scalar fields equal to their default (0, empty) are omitted, as proto3 does;
* varints minimal; int64 as two's-complement varints; fixed64/double little-endian.
"""
from __future__ import annotations

import struct

_F64 = struct.Struct("<Q")
_D = struct.Struct("<d")
_F32 = struct.Struct("<I")


def varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def f_bytes(number: int, payload: bytes, keep_empty: bool = False) -> bytes:
    """A length-delimited field; omitted when empty unless ``keep_empty`` (sub-messages)."""
    if not payload and not keep_empty:
        return b""
    return tag(number, 2) + varint(len(payload)) + payload


def f_str(number: int, text: str) -> bytes:
    return f_bytes(number, text.encode("utf-8"))


def f_varint(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value) if value else b""


def f_fixed64(number: int, value: int) -> bytes:
    return tag(number, 1) + _F64.pack(value & 0xFFFFFFFFFFFFFFFF) if value else b""


def f_fixed32(number: int, value: int) -> bytes:
    return tag(number, 5) + _F32.pack(value) if value else b""


# AnyValue (common.proto): 1 string, 2 bool, 3 int, 4 double, 5 array, 6 kvlist, 7 bytes.
def any_string(text: str) -> bytes:
    return f_bytes(1, text.encode("utf-8"), keep_empty=True)


def any_bool(value: bool) -> bytes:
    return tag(2, 0) + varint(1 if value else 0)


def any_int(value: int) -> bytes:
    return tag(3, 0) + varint(value)


def any_double(value: float) -> bytes:
    return tag(4, 1) + _D.pack(value)


def any_bytes(value: bytes) -> bytes:
    return f_bytes(7, value, keep_empty=True)


def any_value(value) -> bytes:
    """AnyValue of a Python value (str, bool, int, float, bytes, list/tuple, dict)."""
    if isinstance(value, bool):
        return any_bool(value)
    if isinstance(value, int):
        return any_int(value)
    if isinstance(value, float):
        return any_double(value)
    if isinstance(value, str):
        return any_string(value)
    if isinstance(value, (bytes, bytearray)):
        return any_bytes(bytes(value))
    if isinstance(value, (list, tuple)):
        return f_bytes(5, b"".join(f_bytes(1, any_value(v), keep_empty=True) for v in value), keep_empty=True)
    if isinstance(value, dict):
        return f_bytes(6, b"".join(f_bytes(1, key_value(k, any_value(v)), keep_empty=True)
                                   for k, v in value.items()), keep_empty=True)
    raise TypeError(f"no AnyValue for {type(value).__name__}")


def key_value(key: str, any_value_bytes: bytes) -> bytes:
    """KeyValue: 1 key, 2 value (an AnyValue's bytes)."""
    return f_str(1, key) + f_bytes(2, any_value_bytes, keep_empty=True)


def attributes(number: int, kvs) -> bytes:
    """Repeated KeyValue field ``number`` from already-encoded KeyValue messages."""
    return b"".join(f_bytes(number, kv, keep_empty=True) for kv in kvs)


def event(time_ns: int, name: str, kvs=()) -> bytes:
    """Span.Event: 1 time fixed64, 2 name, 3 attributes."""
    return f_fixed64(1, time_ns) + f_str(2, name) + attributes(3, kvs)


def link(trace_id: bytes, span_id: bytes, kvs=(), trace_state: str = "") -> bytes:
    """Span.Link: 1 trace_id, 2 span_id, 3 trace_state, 4 attributes."""
    return f_bytes(1, trace_id) + f_bytes(2, span_id) + f_str(3, trace_state) + attributes(4, kvs)


def status(code: int, message: str = "") -> bytes:
    """Status: 2 message, 3 code."""
    return f_str(2, message) + f_varint(3, code)


def span(trace_id: bytes, span_id: bytes, name: str, kind: int, start_ns: int, end_ns: int, *,
         parent_span_id: bytes = b"", trace_state: str = "", kvs=(), events=(), links=(),
         status_bytes: bytes = b"", flags: int = 0) -> bytes:
    """Span: 1 trace_id, 2 span_id, 3 trace_state, 4 parent, 5 name, 6 kind, 7 start, 8 end,
    9 attributes, 11 events, 13 links, 15 status, 16 flags."""
    return b"".join((
        f_bytes(1, trace_id), f_bytes(2, span_id), f_str(3, trace_state), f_bytes(4, parent_span_id),
        f_str(5, name), f_varint(6, kind), f_fixed64(7, start_ns), f_fixed64(8, end_ns),
        attributes(9, kvs), b"".join(f_bytes(11, e, keep_empty=True) for e in events),
        b"".join(f_bytes(13, l, keep_empty=True) for l in links), f_bytes(15, status_bytes),
        f_fixed32(16, flags),
    ))


def scope_spans(spans, scope_name: str = "", scope_version: str = "") -> bytes:
    """ScopeSpans: 1 scope (InstrumentationScope: 1 name, 2 version), 2 spans."""
    scope = f_str(1, scope_name) + f_str(2, scope_version)
    return f_bytes(1, scope) + b"".join(f_bytes(2, s, keep_empty=True) for s in spans)


def resource_spans(resource_kvs, scope_spans_list) -> bytes:
    """ResourceSpans: 1 resource (Resource: 1 attributes), 2 scope_spans."""
    return (f_bytes(1, attributes(1, resource_kvs), keep_empty=True)
            + b"".join(f_bytes(2, s, keep_empty=True) for s in scope_spans_list))


def export_request(resource_spans_list) -> bytes:
    """ExportTraceServiceRequest: 1 resource_spans."""
    return b"".join(f_bytes(1, r, keep_empty=True) for r in resource_spans_list)
