"""Decode stage, pure-Python reference: OTLP ``ExportTraceServiceRequest`` protobuf → SpanBatch.

The compiled twin is ``_ext/_otlp.pyx``; both walk the wire format once, build no protobuf
objects, and raise ``DecodeError`` with the same message for the same bad input.  Keep the two
in step: every check here has its line there, in the same order.
"""
from __future__ import annotations

import struct

import numpy as np

from collector.errors import DecodeError
from collector.model import (
    AT_EVENT, AT_LINK, AT_SPAN, ATTR_DTYPE, SPAN_DTYPE, SpanBatch,
    VT_ARRAY, VT_BOOL, VT_BYTES, VT_DOUBLE, VT_INT, VT_KVLIST, VT_STRING,
)

_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")
_SERVICE_NAME = b"service.name"


def _field(buf, pos, end, ctx):
    """Read one field at ``pos``: (field number, wire type, value start, value end, varint, next)."""
    kpos = pos
    key, pos = _varint(buf, pos, end, ctx, kpos)
    field, wt = key >> 3, key & 7
    if field == 0:
        raise DecodeError(f"{ctx}: invalid field number 0 at offset {kpos}")
    if wt == 0:
        value, pos = _varint(buf, pos, end, ctx, kpos)
        return field, wt, pos, pos, value, pos
    if wt == 1:
        if end - pos < 8:
            raise DecodeError(f"{ctx}: truncated fixed64 at offset {kpos}")
        return field, wt, pos, pos + 8, 0, pos + 8
    if wt == 2:
        length, pos = _varint(buf, pos, end, ctx, kpos)
        if length > end - pos:
            raise DecodeError(f"{ctx}: length {length} overruns its message at offset {kpos}")
        return field, wt, pos, pos + length, 0, pos + length
    if wt == 5:
        if end - pos < 4:
            raise DecodeError(f"{ctx}: truncated fixed32 at offset {kpos}")
        return field, wt, pos, pos + 4, 0, pos + 4
    raise DecodeError(f"{ctx}: unsupported wire type {wt} at offset {kpos}")


def _varint(buf, pos, end, ctx, kpos):
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise DecodeError(f"{ctx}: truncated varint at offset {kpos}")
        if shift >= 70:
            raise DecodeError(f"{ctx}: varint too long at offset {kpos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos


def _expect(wt, want, ctx, name, kpos):
    if wt != want:
        raise DecodeError(f"{ctx}.{name}: wire type {wt}, expected {want} (at offset {kpos})")


MAX_ANY_DEPTH = 20  # arrays/maps inside attribute values; protobuf cannot read back much deeper


def _nested(buf, pos, end, kvlist, depth, kpos):
    """Walk an ArrayValue or KeyValueList, refusing nesting deeper than MAX_ANY_DEPTH."""
    if depth > MAX_ANY_DEPTH:
        raise DecodeError(f"AnyValue: arrays and maps nested deeper than {MAX_ANY_DEPTH} levels "
                          f"(at offset {kpos})")
    ctx = "KeyValueList" if kvlist else "ArrayValue"
    while pos < end:
        k = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, ctx)
        if f != 1:
            continue
        _expect(wt, 2, ctx, "values", k)
        if not kvlist:
            _nested_any(buf, s, e, depth, k)
            continue
        p = s
        while p < e:
            k2 = p
            f2, wt2, s2, e2, v2, p = _field(buf, p, e, "KeyValue")
            if f2 == 2:
                _expect(wt2, 2, "KeyValue", "value", k2)
                _nested_any(buf, s2, e2, depth, k2)


def _nested_any(buf, pos, end, depth, kpos):
    while pos < end:
        k = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "AnyValue")
        if f == 5 or f == 6:
            _expect(wt, 2, "AnyValue", "array_value" if f == 5 else "kvlist_value", k)
            _nested(buf, s, e, f == 6, depth + 1, k)


def _any_value(buf, pos, end):
    """(vtype, value start, value end, num) of an AnyValue; the last oneof field wins."""
    vtype, voff, vend, num = 0, pos, pos, 0
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "AnyValue")
        if f == 1:
            _expect(wt, 2, "AnyValue", "string_value", kpos)
            vtype, voff, vend, num = VT_STRING, s, e, 0
        elif f == 2:
            _expect(wt, 0, "AnyValue", "bool_value", kpos)
            vtype, voff, vend, num = VT_BOOL, s, s, 1 if v else 0
        elif f == 3:
            _expect(wt, 0, "AnyValue", "int_value", kpos)
            vtype, voff, vend, num = VT_INT, s, s, v - (1 << 64) if v >= (1 << 63) else v
        elif f == 4:
            _expect(wt, 1, "AnyValue", "double_value", kpos)
            vtype, voff, vend, num = VT_DOUBLE, s, s, _I64.unpack_from(buf, s)[0]
        elif f == 5:
            _expect(wt, 2, "AnyValue", "array_value", kpos)
            _nested(buf, s, e, False, 1, kpos)
            vtype, voff, vend, num = VT_ARRAY, s, e, 0
        elif f == 6:
            _expect(wt, 2, "AnyValue", "kvlist_value", kpos)
            _nested(buf, s, e, True, 1, kpos)
            vtype, voff, vend, num = VT_KVLIST, s, e, 0
        elif f == 7:
            _expect(wt, 2, "AnyValue", "bytes_value", kpos)
            vtype, voff, vend, num = VT_BYTES, s, e, 0
    return vtype, voff, vend, num


def _key_value(buf, pos, end, attrs, span, where):
    koff = kend = pos
    vtype, voff, vend, num = 0, pos, pos, 0
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "KeyValue")
        if f == 1:
            _expect(wt, 2, "KeyValue", "key", kpos)
            koff, kend = s, e
        elif f == 2:
            _expect(wt, 2, "KeyValue", "value", kpos)
            vtype, voff, vend, num = _any_value(buf, s, e)
    attrs.append((span, where, vtype, koff, kend - koff, voff, vend - voff, num))


def _nested_attrs(buf, pos, end, ctx, attr_field, attrs, span, where):
    """Attributes of an Event (field 3) or a Link (field 4) of the span."""
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, ctx)
        if f == attr_field:
            _expect(wt, 2, ctx, "attributes", kpos)
            _key_value(buf, s, e, attrs, span, where)


def _span(buf, pos, end, spans, attrs, resource, scope):
    span_off, span_len = pos, end - pos
    span = len(spans)
    attr_start = len(attrs)
    trace_id = span_id = parent = b""
    tlen = slen = plen = 0
    kind = status = 0
    start_ns = end_ns = 0
    name_off = name_len = 0
    state_off = state_len = 0
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "Span")
        if f == 1:
            _expect(wt, 2, "Span", "trace_id", kpos)
            tlen = min(e - s, 255)
            trace_id = buf[s:s + min(e - s, 16)]
        elif f == 2:
            _expect(wt, 2, "Span", "span_id", kpos)
            slen = min(e - s, 255)
            span_id = buf[s:s + min(e - s, 8)]
        elif f == 3:
            _expect(wt, 2, "Span", "trace_state", kpos)
            state_off, state_len = s, e - s
        elif f == 4:
            _expect(wt, 2, "Span", "parent_span_id", kpos)
            plen = min(e - s, 255)
            parent = buf[s:s + min(e - s, 8)]
        elif f == 5:
            _expect(wt, 2, "Span", "name", kpos)
            name_off, name_len = s, e - s
        elif f == 6:
            _expect(wt, 0, "Span", "kind", kpos)
            kind = min(v, 255)
        elif f == 7:
            _expect(wt, 1, "Span", "start_time_unix_nano", kpos)
            start_ns = _U64.unpack_from(buf, s)[0]
        elif f == 8:
            _expect(wt, 1, "Span", "end_time_unix_nano", kpos)
            end_ns = _U64.unpack_from(buf, s)[0]
        elif f == 9:
            _expect(wt, 2, "Span", "attributes", kpos)
            _key_value(buf, s, e, attrs, span, AT_SPAN)
        elif f == 11:
            _expect(wt, 2, "Span", "events", kpos)
            _nested_attrs(buf, s, e, "Span.Event", 3, attrs, span, AT_EVENT)
        elif f == 13:
            _expect(wt, 2, "Span", "links", kpos)
            _nested_attrs(buf, s, e, "Span.Link", 4, attrs, span, AT_LINK)
        elif f == 15:
            _expect(wt, 2, "Span", "status", kpos)
            p = s
            while p < e:
                k2 = p
                f2, wt2, s2, e2, v2, p = _field(buf, p, e, "Status")
                if f2 == 3:
                    _expect(wt2, 0, "Status", "code", k2)
                    status = min(v2, 255)
    spans.append((trace_id.ljust(16, b"\0"), span_id.ljust(8, b"\0"), parent.ljust(8, b"\0"),
                  tlen, slen, plen, kind, status, start_ns, end_ns, span_off, span_len,
                  name_off, name_len, resource, scope, attr_start, len(attrs) - attr_start,
                  state_off, state_len))


def _scope_spans(buf, pos, end, spans, attrs, scopes, resource):
    scope = len(scopes)
    scopes.append(None)
    record = []
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "ScopeSpans")
        if f == 2:
            _expect(wt, 2, "ScopeSpans", "spans", kpos)
            _span(buf, s, e, spans, attrs, resource, scope)
        else:
            record.append(buf[kpos:pos])
    scopes[scope] = (b"".join(record), resource)


def _service_name(buf, pos, end):
    """The string value of the ``service.name`` attribute of a Resource, or ''."""
    service = ""
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "Resource")
        if f != 1:
            continue
        _expect(wt, 2, "Resource", "attributes", kpos)
        p, key, val = s, None, None
        while p < e:
            k2 = p
            f2, wt2, s2, e2, v2, p = _field(buf, p, e, "KeyValue")
            if f2 == 1:
                _expect(wt2, 2, "KeyValue", "key", k2)
                key = buf[s2:e2]
            elif f2 == 2:
                _expect(wt2, 2, "KeyValue", "value", k2)
                val = (s2, e2)
        if key == _SERVICE_NAME and val is not None:
            vtype, voff, vend, num = _any_value(buf, val[0], val[1])
            if vtype == VT_STRING:
                service = buf[voff:vend].decode("utf-8", "replace")
    return service


def _resource_spans(buf, pos, end, spans, attrs, resources, scopes):
    resource = len(resources)
    resources.append(None)
    record = []
    service = ""
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "ResourceSpans")
        if f == 2:
            _expect(wt, 2, "ResourceSpans", "scope_spans", kpos)
            _scope_spans(buf, s, e, spans, attrs, scopes, resource)
            continue
        if f == 1:
            _expect(wt, 2, "ResourceSpans", "resource", kpos)
            service = _service_name(buf, s, e)
        record.append(buf[kpos:pos])
    resources[resource] = (b"".join(record), service)


def decode_export_request(buf) -> SpanBatch:
    """Decode an ``ExportTraceServiceRequest``; raise ``DecodeError`` naming what is wrong."""
    buf = bytes(buf)
    spans: list = []
    attrs: list = []
    resources: list = []
    scopes: list = []
    pos, end = 0, len(buf)
    while pos < end:
        kpos = pos
        f, wt, s, e, v, pos = _field(buf, pos, end, "ExportTraceServiceRequest")
        if f == 1:
            _expect(wt, 2, "ExportTraceServiceRequest", "resource_spans", kpos)
            _resource_spans(buf, s, e, spans, attrs, resources, scopes)
    span_arr = np.array(spans, dtype=SPAN_DTYPE) if spans else np.zeros(0, SPAN_DTYPE)
    attr_arr = np.array(attrs, dtype=ATTR_DTYPE) if attrs else np.zeros(0, ATTR_DTYPE)
    return SpanBatch(buf, span_arr, attr_arr, resources, scopes)
