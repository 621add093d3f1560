# cython: language_level=3
"""Decode stage, compiled twin of collector/codec/otlp.py (same API, same errors, same order).

Walks the protobuf wire format once with a bounds-checked cursor; fills packed C rows that are
copied into numpy arrays at the end.  No Python object is made per span or per attribute.
"""
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset, memcmp

from _ext.pbreader cimport Field, expect, pb_fail, read_field
from _ext.rows cimport AttrRow, SpanRow

import numpy as np

from collector.errors import DecodeError
from collector.model import ATTR_DTYPE, SPAN_DTYPE, SpanBatch

cdef enum:
    VT_STRING = 1
    VT_BOOL = 2
    VT_INT = 3
    VT_DOUBLE = 4
    VT_ARRAY = 5
    VT_KVLIST = 6
    VT_BYTES = 7
    AT_SPAN = 0
    AT_EVENT = 1
    AT_LINK = 2

# Growable output rows.
cdef struct Out:
    SpanRow* spans
    Py_ssize_t nspans
    Py_ssize_t cap_spans
    AttrRow* attrs
    Py_ssize_t nattrs
    Py_ssize_t cap_attrs


cdef inline uint64_t min255(uint64_t v):
    return v if v < 255 else 255


cdef enum:
    MAX_ANY_DEPTH = 20  # as collector/codec/otlp.py


cdef int nested(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, bint kvlist, int depth,
                Py_ssize_t kpos) except -1:
    """Walk an ArrayValue or KeyValueList, refusing nesting deeper than MAX_ANY_DEPTH."""
    cdef Field f, f2
    cdef Py_ssize_t k, k2, q
    cdef str ctx = "KeyValueList" if kvlist else "ArrayValue"
    if depth > MAX_ANY_DEPTH:
        pb_fail(f"AnyValue: arrays and maps nested deeper than {MAX_ANY_DEPTH} levels "
                f"(at offset {kpos})")
    while pos < end:
        k = pos
        read_field(p, pos, end, &f, ctx)
        pos = f.next
        if f.number != 1:
            continue
        expect(f.wt, 2, ctx, "values", k)
        if not kvlist:
            nested_any(p, f.start, f.end, depth, k)
            continue
        q = f.start
        while q < f.end:
            k2 = q
            read_field(p, q, f.end, &f2, "KeyValue")
            q = f2.next
            if f2.number == 2:
                expect(f2.wt, 2, "KeyValue", "value", k2)
                nested_any(p, f2.start, f2.end, depth, k2)
    return 0


cdef int nested_any(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, int depth,
                    Py_ssize_t kpos) except -1:
    cdef Field f
    cdef Py_ssize_t k
    while pos < end:
        k = pos
        read_field(p, pos, end, &f, "AnyValue")
        pos = f.next
        if f.number == 5 or f.number == 6:
            expect(f.wt, 2, "AnyValue", "array_value" if f.number == 5 else "kvlist_value", k)
            nested(p, f.start, f.end, f.number == 6, depth + 1, k)
    return 0


cdef int any_value(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, AttrRow* row) except -1:
    cdef Field f
    cdef Py_ssize_t kpos
    cdef int64_t bits
    row.vtype = 0
    row.val_off = <uint32_t>pos
    row.val_len = 0
    row.num = 0
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "AnyValue")
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, "AnyValue", "string_value", kpos)
            row.vtype = VT_STRING; row.val_off = <uint32_t>f.start
            row.val_len = <uint32_t>(f.end - f.start); row.num = 0
        elif f.number == 2:
            expect(f.wt, 0, "AnyValue", "bool_value", kpos)
            row.vtype = VT_BOOL; row.val_off = <uint32_t>f.start; row.val_len = 0
            row.num = 1 if f.value else 0
        elif f.number == 3:
            expect(f.wt, 0, "AnyValue", "int_value", kpos)
            row.vtype = VT_INT; row.val_off = <uint32_t>f.start; row.val_len = 0
            row.num = <int64_t>f.value
        elif f.number == 4:
            expect(f.wt, 1, "AnyValue", "double_value", kpos)
            memcpy(&bits, p + f.start, 8)
            row.vtype = VT_DOUBLE; row.val_off = <uint32_t>f.start; row.val_len = 0
            row.num = bits
        elif f.number == 5:
            expect(f.wt, 2, "AnyValue", "array_value", kpos)
            nested(p, f.start, f.end, False, 1, kpos)
            row.vtype = VT_ARRAY; row.val_off = <uint32_t>f.start
            row.val_len = <uint32_t>(f.end - f.start); row.num = 0
        elif f.number == 6:
            expect(f.wt, 2, "AnyValue", "kvlist_value", kpos)
            nested(p, f.start, f.end, True, 1, kpos)
            row.vtype = VT_KVLIST; row.val_off = <uint32_t>f.start
            row.val_len = <uint32_t>(f.end - f.start); row.num = 0
        elif f.number == 7:
            expect(f.wt, 2, "AnyValue", "bytes_value", kpos)
            row.vtype = VT_BYTES; row.val_off = <uint32_t>f.start
            row.val_len = <uint32_t>(f.end - f.start); row.num = 0
    return 0


cdef AttrRow* new_attr(Out* out) except NULL:
    cdef AttrRow* grown
    if out.nattrs == out.cap_attrs:
        grown = <AttrRow*>PyMem_Realloc(out.attrs, sizeof(AttrRow) * out.cap_attrs * 2)
        if grown == NULL:
            raise MemoryError()
        out.attrs = grown
        out.cap_attrs *= 2
    out.nattrs += 1
    return &out.attrs[out.nattrs - 1]


cdef int key_value(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, Out* out,
                   uint32_t span, uint8_t where) except -1:
    cdef Field f
    cdef Py_ssize_t kpos
    cdef AttrRow row
    row.span = span
    row.where = where
    row.key_off = <uint32_t>pos
    row.key_len = 0
    row.vtype = 0
    row.val_off = <uint32_t>pos
    row.val_len = 0
    row.num = 0
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "KeyValue")
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, "KeyValue", "key", kpos)
            row.key_off = <uint32_t>f.start
            row.key_len = <uint32_t>(f.end - f.start)
        elif f.number == 2:
            expect(f.wt, 2, "KeyValue", "value", kpos)
            any_value(p, f.start, f.end, &row)
    new_attr(out)[0] = row
    return 0


cdef int nested_attrs(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, str ctx,
                      uint64_t attr_field, Out* out, uint32_t span, uint8_t where) except -1:
    cdef Field f
    cdef Py_ssize_t kpos
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, ctx)
        pos = f.next
        if f.number == attr_field:
            expect(f.wt, 2, ctx, "attributes", kpos)
            key_value(p, f.start, f.end, out, span, where)
    return 0


cdef int decode_span(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, Out* out,
                     uint32_t resource, uint32_t scope) except -1:
    cdef Field f, f2
    cdef Py_ssize_t kpos, k2, q
    cdef SpanRow row
    cdef SpanRow* grown
    cdef uint32_t span = <uint32_t>out.nspans
    cdef Py_ssize_t n
    memset(&row, 0, sizeof(SpanRow))
    row.span_off = <uint32_t>pos
    row.span_len = <uint32_t>(end - pos)
    row.resource = resource
    row.scope = scope
    row.attr_start = <uint32_t>out.nattrs
    row.name_off = 0
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "Span")
        pos = f.next
        if f.number == 1:
            expect(f.wt, 2, "Span", "trace_id", kpos)
            n = f.end - f.start
            row.trace_id_len = <uint8_t>min255(n)
            memset(row.trace_id, 0, 16)
            memcpy(row.trace_id, p + f.start, n if n < 16 else 16)
        elif f.number == 2:
            expect(f.wt, 2, "Span", "span_id", kpos)
            n = f.end - f.start
            row.span_id_len = <uint8_t>min255(n)
            memset(row.span_id, 0, 8)
            memcpy(row.span_id, p + f.start, n if n < 8 else 8)
        elif f.number == 3:
            expect(f.wt, 2, "Span", "trace_state", kpos)
            row.state_off = <uint32_t>f.start
            row.state_len = <uint32_t>(f.end - f.start)
        elif f.number == 4:
            expect(f.wt, 2, "Span", "parent_span_id", kpos)
            n = f.end - f.start
            row.parent_id_len = <uint8_t>min255(n)
            memset(row.parent_span_id, 0, 8)
            memcpy(row.parent_span_id, p + f.start, n if n < 8 else 8)
        elif f.number == 5:
            expect(f.wt, 2, "Span", "name", kpos)
            row.name_off = <uint32_t>f.start
            row.name_len = <uint32_t>(f.end - f.start)
        elif f.number == 6:
            expect(f.wt, 0, "Span", "kind", kpos)
            row.kind = <uint8_t>min255(f.value)
        elif f.number == 7:
            expect(f.wt, 1, "Span", "start_time_unix_nano", kpos)
            memcpy(&row.start_ns, p + f.start, 8)
        elif f.number == 8:
            expect(f.wt, 1, "Span", "end_time_unix_nano", kpos)
            memcpy(&row.end_ns, p + f.start, 8)
        elif f.number == 9:
            expect(f.wt, 2, "Span", "attributes", kpos)
            key_value(p, f.start, f.end, out, span, AT_SPAN)
        elif f.number == 11:
            expect(f.wt, 2, "Span", "events", kpos)
            nested_attrs(p, f.start, f.end, "Span.Event", 3, out, span, AT_EVENT)
        elif f.number == 13:
            expect(f.wt, 2, "Span", "links", kpos)
            nested_attrs(p, f.start, f.end, "Span.Link", 4, out, span, AT_LINK)
        elif f.number == 15:
            expect(f.wt, 2, "Span", "status", kpos)
            q = f.start
            while q < f.end:
                k2 = q
                read_field(p, q, f.end, &f2, "Status")
                q = f2.next
                if f2.number == 3:
                    expect(f2.wt, 0, "Status", "code", k2)
                    row.status_code = <uint8_t>min255(f2.value)
    row.attr_count = <uint32_t>(out.nattrs - row.attr_start)
    if out.nspans == out.cap_spans:
        grown = <SpanRow*>PyMem_Realloc(out.spans, sizeof(SpanRow) * out.cap_spans * 2)
        if grown == NULL:
            raise MemoryError()
        out.spans = grown
        out.cap_spans *= 2
    out.spans[out.nspans] = row
    out.nspans += 1
    return 0


cdef int scope_spans(bytes buf, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, Out* out,
                     list scopes, uint32_t resource) except -1:
    cdef Field f
    cdef Py_ssize_t kpos
    cdef uint32_t scope = <uint32_t>len(scopes)
    cdef list record = []
    scopes.append(None)
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "ScopeSpans")
        pos = f.next
        if f.number == 2:
            expect(f.wt, 2, "ScopeSpans", "spans", kpos)
            decode_span(p, f.start, f.end, out, resource, scope)
        else:
            record.append(buf[kpos:pos])
    scopes[scope] = (b"".join(record), resource)
    return 0


cdef str service_name(bytes buf, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end):
    cdef Field f, f2
    cdef Py_ssize_t kpos, k2, q
    cdef Py_ssize_t key_off, key_len, val_start, val_end
    cdef bint has_key, has_val
    cdef AttrRow row
    cdef str service = ""
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "Resource")
        pos = f.next
        if f.number != 1:
            continue
        expect(f.wt, 2, "Resource", "attributes", kpos)
        q = f.start
        has_key = has_val = False
        while q < f.end:
            k2 = q
            read_field(p, q, f.end, &f2, "KeyValue")
            q = f2.next
            if f2.number == 1:
                expect(f2.wt, 2, "KeyValue", "key", k2)
                has_key = True
                key_off = f2.start
                key_len = f2.end - f2.start
            elif f2.number == 2:
                expect(f2.wt, 2, "KeyValue", "value", k2)
                has_val = True
                val_start = f2.start
                val_end = f2.end
        if has_key and has_val and key_len == 12 and memcmp(p + key_off, b"service.name", 12) == 0:
            any_value(p, val_start, val_end, &row)
            if row.vtype == VT_STRING:
                service = buf[row.val_off:row.val_off + row.val_len].decode("utf-8", "replace")
    return service


cdef int resource_spans(bytes buf, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, Out* out,
                        list resources, list scopes) except -1:
    cdef Field f
    cdef Py_ssize_t kpos
    cdef uint32_t resource = <uint32_t>len(resources)
    cdef list record = []
    cdef str service = ""
    resources.append(None)
    while pos < end:
        kpos = pos
        read_field(p, pos, end, &f, "ResourceSpans")
        pos = f.next
        if f.number == 2:
            expect(f.wt, 2, "ResourceSpans", "scope_spans", kpos)
            scope_spans(buf, p, f.start, f.end, out, scopes, resource)
            continue
        if f.number == 1:
            expect(f.wt, 2, "ResourceSpans", "resource", kpos)
            service = service_name(buf, p, f.start, f.end)
        record.append(buf[kpos:pos])
    resources[resource] = (b"".join(record), service)
    return 0


def decode_export_request(buf) -> SpanBatch:
    """Decode an ``ExportTraceServiceRequest``; raise ``DecodeError`` naming what is wrong."""
    cdef bytes data = bytes(buf)
    cdef const uint8_t* p = <const uint8_t*><char*>data
    cdef Py_ssize_t pos = 0, end = len(data), kpos
    cdef Field f
    cdef Out out
    cdef list resources = []
    cdef list scopes = []
    cdef unsigned char[::1] view
    out.cap_spans = 64
    out.cap_attrs = 256
    out.nspans = 0
    out.nattrs = 0
    out.spans = <SpanRow*>PyMem_Malloc(sizeof(SpanRow) * out.cap_spans)
    out.attrs = <AttrRow*>PyMem_Malloc(sizeof(AttrRow) * out.cap_attrs)
    if out.spans == NULL or out.attrs == NULL:
        PyMem_Free(out.spans)
        PyMem_Free(out.attrs)
        raise MemoryError()
    try:
        while pos < end:
            kpos = pos
            read_field(p, pos, end, &f, "ExportTraceServiceRequest")
            pos = f.next
            if f.number == 1:
                expect(f.wt, 2, "ExportTraceServiceRequest", "resource_spans", kpos)
                resource_spans(data, p, f.start, f.end, &out, resources, scopes)
        span_arr = np.empty(out.nspans, dtype=SPAN_DTYPE)
        if out.nspans:
            view = span_arr.view(np.uint8)
            memcpy(&view[0], out.spans, sizeof(SpanRow) * out.nspans)
        attr_arr = np.empty(out.nattrs, dtype=ATTR_DTYPE)
        if out.nattrs:
            view = attr_arr.view(np.uint8)
            memcpy(&view[0], out.attrs, sizeof(AttrRow) * out.nattrs)
    finally:
        PyMem_Free(out.spans)
        PyMem_Free(out.attrs)
    return SpanBatch(data, span_arr, attr_arr, resources, scopes)
